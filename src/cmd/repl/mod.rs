//! `qc repl`: an interactive session for experimenting with formats.
//!
//! On a terminal it reads lines with rustyline (line editing, history kept in memory only).
//! Otherwise it reads stdin line by line without prompts and echoes each command as `> LINE`,
//! so a scripted session's output reads as a transcript; `#` comment lines and blank lines
//! are echoed as they are. A failing command prints `error: ...` and the session goes on.

mod command;
mod experiments;
mod session;

use super::CliError;
use session::{Flow, Session};
use std::io::{BufRead, IsTerminal};

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<(), CliError> {
    let mut session = Session::new();
    if std::io::stdin().is_terminal() {
        interactive(&mut session)
    } else {
        scripted(&mut session, std::io::stdin().lock())
    }
}

const PROMPT: &str = "qc> ";

fn interactive(session: &mut Session) -> Result<(), CliError> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new().map_err(|e| CliError::new(format!("cannot start the line editor: {e}")))?;
    super::print("qc repl: `:help` lists the commands, `:quit` leaves.\n")?;
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                // A history entry that cannot be added only costs recall, not the command.
                let _ = editor.add_history_entry(line.as_str());
                let (text, flow) = session.execute(&line);
                super::print(&text)?;
                if flow == Flow::Quit {
                    return Ok(());
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(CliError::new(format!("cannot read the input: {e}"))),
        }
    }
}

/// Runs a script as `qc repl` does with a non-terminal stdin, printing the transcript.
pub fn run_script(input: impl BufRead) -> Result<(), CliError> {
    scripted(&mut Session::new(), input)
}

fn scripted(session: &mut Session, mut input: impl BufRead) -> Result<(), CliError> {
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        let n = input.read_until(b'\n', &mut bytes).map_err(|e| CliError::new(format!("cannot read stdin: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&bytes);
        let line = line.trim_end_matches(['\n', '\r']);
        let text = if line.trim().is_empty() || line.trim_start().starts_with('#') {
            format!("{line}\n")
        } else {
            let (text, flow) = session.execute(line);
            let transcript = format!("> {line}\n{text}");
            if flow == Flow::Quit {
                super::print(&transcript)?;
                return Ok(());
            }
            transcript
        };
        super::print(&text)?;
    }
}
