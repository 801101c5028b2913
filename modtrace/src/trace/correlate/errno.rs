//! Error numbers a load syscall returns, by name.

/// The errno name of a positive error number, e.g. "EPERM"; "errno N" otherwise.
pub fn errno_name(errno: i64) -> String {
    let name = match errno {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        21 => "EISDIR",
        22 => "EINVAL",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        30 => "EROFS",
        34 => "ERANGE",
        38 => "ENOSYS",
        61 => "ENODATA",
        62 => "ETIME",
        65 => "ENOPKG",
        74 => "EBADMSG",
        75 => "EOVERFLOW",
        95 => "EOPNOTSUPP",
        110 => "ETIMEDOUT",
        126 => "ENOKEY",
        127 => "EKEYEXPIRED",
        128 => "EKEYREVOKED",
        129 => "EKEYREJECTED",
        // Kernel-internal codes the syscall exit can still show.
        512 => "ERESTARTSYS",
        513 => "ERESTARTNOINTR",
        514 => "ERESTARTNOHAND",
        516 => "ERESTART_RESTARTBLOCK",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(1), "EPERM");
        assert_eq!(errno_name(17), "EEXIST");
        assert_eq!(errno_name(129), "EKEYREJECTED");
        assert_eq!(errno_name(123), "errno 123");
    }
}
