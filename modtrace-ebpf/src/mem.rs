//! Zeroing with word stores. The compiler's memset is a subprogram storing one
//! byte per turn of a loop, and the 6.1 verifier walks every turn (the index is
//! an offset it must know exactly): zeroing a header's cgroup path took 2880
//! verified instructions, at every path that reached it. Also the volatile
//! stores and loads the probes use to keep a value where the verifier wants it.

/// Zeroes `buf` with one volatile store per 8 bytes: volatile, so the compiler
/// cannot merge them back into a memset call. `buf` must be 8-aligned:
/// modtrace_common asserts it of every field this is used on.
#[inline(always)]
pub fn zero<const N: usize>(buf: &mut [u8; N]) {
    // SAFETY: a reference is valid for writes. 8-aligned: the event fields by
    // modtrace_common's asserts, the other buffers are u64 arrays.
    unsafe { zero_at(buf) }
}

/// [`zero`] for memory not initialized yet.
///
/// # Safety
/// `buf` must be valid for writes and 8-aligned.
#[inline(always)]
pub unsafe fn zero_at<const N: usize>(buf: *mut [u8; N]) {
    const { assert!(N.is_multiple_of(8)) };
    let words = buf.cast::<u64>();
    for i in 0..N / 8 {
        // SAFETY: word i of N / 8 lies inside `buf`, which the caller vouches for.
        unsafe { words.add(i).write_volatile(0) };
    }
}

/// Stores a field's zero value with a volatile store: neighbouring plain stores
/// of zero are merged into one memset call.
#[inline(always)]
pub fn clear<T: Copy + Default>(field: &mut T) {
    store(field, T::default());
}

/// Stores `value` with a volatile store, which the compiler keeps where it is.
#[inline(always)]
pub fn store<T: Copy>(field: &mut T, value: T) {
    // SAFETY: a reference is valid for writes and aligned.
    unsafe { core::ptr::write_volatile(field, value) };
}

/// Loads a field with a volatile load: the value is read back from memory,
/// not known to the compiler (or the verifier).
#[inline(always)]
pub fn load<T: Copy>(field: &T) -> T {
    // SAFETY: a reference is valid for reads and aligned.
    unsafe { core::ptr::read_volatile(field) }
}
