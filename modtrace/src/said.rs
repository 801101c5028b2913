//! What a command says, built by the stages (which never print) and printed by
//! cli/: lines for standard output and standard error, in the order said.

/// Where a line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Said(pub Vec<(Stream, String)>);

impl Said {
    pub fn out(&mut self, line: impl Into<String>) {
        self.0.push((Stream::Out, line.into()));
    }

    pub fn err(&mut self, line: impl Into<String>) {
        self.0.push((Stream::Err, line.into()));
    }

    pub fn append(&mut self, mut other: Said) {
        self.0.append(&mut other.0);
    }

    /// The lines of one stream, joined (for tests).
    pub fn text(&self, stream: Stream) -> String {
        self.0.iter().filter(|(s, _)| *s == stream).map(|(_, l)| format!("{l}\n")).collect()
    }

    pub fn print(&self) {
        for (stream, line) in &self.0 {
            match stream {
                Stream::Out => println!("{line}"),
                Stream::Err => eprintln!("{line}"),
            }
        }
    }
}
