//! `keelson completion bash|zsh|fish|elvish|powershell`: prints a shell completion script.

use clap::{Args, CommandFactory};

/// `keelson completion`.
#[derive(Args, Debug)]
pub(crate) struct CompletionCommand {
    /// The shell.
    shell: clap_complete::Shell,
}

impl CompletionCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let mut cmd = crate::Cli::command();
        clap_complete::generate(self.shell, &mut cmd, "keelson", &mut std::io::stdout());
        Ok(())
    }
}
