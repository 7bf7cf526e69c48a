//! Moving data through `encrypt`/`decrypt`: stdin or a file in, stdout or a
//! file out, any size in bounded memory (the library streams 1 MiB blocks).
//! A file output is written to a temporary file beside it and renamed into
//! place only when the whole stream succeeded, so a failed decrypt never
//! leaves plaintext behind. A progress bar shows on stderr when stderr is a
//! terminal and the input is a file (its size is known).

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use keystate::{Error, ErrorKind, Result};

/// A streaming library call: input, output, progress (input bytes so far).
pub type Stream<'a> = dyn FnOnce(&mut dyn Read, &mut dyn Write, &mut dyn FnMut(u64)) -> Result<u64> + 'a;

/// Where the data comes from and goes to; `None` (or `-`) is stdin/stdout.
pub struct Ends<'a> {
    pub input: Option<&'a Path>,
    pub output: Option<&'a Path>,
}

impl<'a> Ends<'a> {
    pub fn new(input: Option<&'a Path>, output: Option<&'a Path>) -> Ends<'a> {
        let not_dash = |p: &&Path| p.as_os_str() != "-";
        Ends { input: input.filter(not_dash), output: output.filter(not_dash) }
    }

    /// Does standard input carry the data?
    pub fn stdin_is_data(&self) -> bool {
        self.input.is_none()
    }

    /// Does standard output carry the data?
    pub fn stdout_is_data(&self) -> bool {
        self.output.is_none()
    }

    /// Run `stream` from the input to the output.
    pub fn run(&self, stream: Box<Stream<'_>>) -> Result<Moved> {
        let (mut input, size): (Box<dyn Read>, Option<u64>) = match self.input {
            None => (Box::new(std::io::stdin().lock()), None),
            Some(path) => {
                let file = File::open(path).map_err(|e| io_error(e, "opening", path))?;
                let size = file.metadata().ok().map(|m| m.len());
                (Box::new(file), size)
            }
        };
        let bar = size.filter(|_| std::io::stderr().is_terminal()).map(progress_bar);
        let mut read = 0;
        let mut progress = |n: u64| {
            read = n;
            if let Some(bar) = &bar {
                bar.set_position(n);
            }
        };
        let mut written = 0;
        let result = match self.output {
            None => to_stdout(&mut input, stream, &mut progress, &mut written),
            Some(path) => to_file(&mut input, path, stream, &mut progress, &mut written),
        };
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        result.map(|_| Moved { read, written })
    }
}

/// How many bytes went through.
#[derive(Clone, Copy, Debug)]
pub struct Moved {
    pub read: u64,
    pub written: u64,
}

/// Counts what passes through to `inner`.
struct Counting<'a, W> {
    inner: W,
    count: &'a mut u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        *self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn to_stdout(
    input: &mut dyn Read,
    stream: Box<Stream<'_>>,
    progress: &mut dyn FnMut(u64),
    written: &mut u64,
) -> Result<u64> {
    let stdout = Counting { inner: std::io::stdout().lock(), count: written };
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    let n = stream(input, &mut out, progress)?;
    out.flush().map_err(|e| Error::new(ErrorKind::Storage, format!("writing to standard output: {e}")))?;
    Ok(n)
}

/// Stream into `dst`, which appears only when the whole stream succeeded.
fn to_file(
    input: &mut dyn Read,
    dst: &Path,
    stream: Box<Stream<'_>>,
    progress: &mut dyn FnMut(u64),
    written: &mut u64,
) -> Result<u64> {
    keystate::write_atomically(dst, |out| {
        let mut counted = Counting { inner: out, count: written };
        stream(input, &mut counted, progress)
    })
}

fn progress_bar(len: u64) -> ProgressBar {
    let style = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len).with_style(style)
}

fn io_error(e: std::io::Error, doing: &str, path: &Path) -> Error {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        _ => ErrorKind::Storage,
    };
    Error::new(kind, format!("{doing} {}: {e}", path.display()))
}
