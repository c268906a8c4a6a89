//! Man pages and shell completions for `wgd` and `wgd-lab`.
//!
//! The command pages come from the programs' clap definitions
//! (`clap_mangen`): one page for the program and one for each command
//! (`wgd-run(8)`), each ending with a SEE ALSO. The file format pages
//! (`wgd.toml(5)`) come from a plain-text description kept in the tree,
//! turned into roff by [`format_page`] (its markup is described there).
//! Completions come from `clap_complete`.
//!
//! Two ways in: the programs' `man --dir DIR` and `completions SHELL`
//! commands, for people; and their build scripts, which write the same
//! files under `target/<profile>/share/` ([`share_dir`], [`install`]) for
//! `cargo deb`, which can only package files that exist after `cargo
//! build` (and compresses none of them: `install` does).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::ValueEnum;

/// The shells completions are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }

    /// Where Debian's shells look for `program`'s completions, under
    /// `/usr/share`.
    pub fn install_path(self, program: &str) -> PathBuf {
        match self {
            Shell::Bash => Path::new("bash-completion/completions").join(program),
            Shell::Zsh => Path::new("zsh/vendor-completions").join(format!("_{program}")),
            Shell::Fish => Path::new("fish/vendor_completions.d").join(format!("{program}.fish")),
        }
    }
}

/// Writes `command`'s completion script for `shell`.
pub fn completions(command: clap::Command, shell: Shell, out: &mut dyn Write) {
    let mut command = command;
    let name = command.get_name().to_owned();
    clap_complete::generate(shell.generator(), &mut command, name, out);
}

/// Prints `command`'s completion script for `shell` on standard output. A
/// reader that stops early (`| head`) ends it quietly, as `cat` does; any
/// other write error fails.
pub fn print_completions(command: clap::Command, shell: Shell) -> std::process::ExitCode {
    let mut script = Vec::new();
    completions(command, shell, &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: writing the completion script: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A program's man pages in `section`: its own and one per command (and
/// per command of a command), `name.section`, each with `see_also` (page
/// references such as `wgd.toml(5)`) and the program's other pages in a
/// SEE ALSO section. Hidden commands and `help` get none.
pub fn command_pages(command: clap::Command, section: &str, see_also: &[&str]) -> Vec<Page> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut commands = Vec::new();
    collect(&command, &mut commands);
    let names: Vec<String> = commands
        .iter()
        .map(|command| display_name(command).to_owned())
        .collect();
    commands
        .into_iter()
        .map(|command| {
            let name = display_name(&command).to_owned();
            // The program's page lists its commands already; a command's
            // page points back to the program's.
            let mut references: Vec<String> = names
                .first()
                .filter(|program| **program != name)
                .map(|program| format!("{program}({section})"))
                .into_iter()
                .collect();
            references.extend(see_also.iter().map(|page| (*page).to_owned()));
            let mut text = Vec::new();
            clap_mangen::Man::new(command)
                .title(name.to_uppercase())
                .section(section)
                .manual("wgd")
                .render(&mut text)
                .expect("writing to memory");
            let mut text = String::from_utf8(text).expect("roff is UTF-8");
            text.push_str(".SH \"SEE ALSO\"\n");
            text.push_str(&escape(&references.join(", ")));
            text.push('\n');
            Page {
                file_name: format!("{name}.{section}"),
                section: section.to_owned(),
                text,
            }
        })
        .collect()
}

fn collect(command: &clap::Command, into: &mut Vec<clap::Command>) {
    into.push(command.clone());
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        collect(sub, into);
    }
}

fn display_name(command: &clap::Command) -> &str {
    command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
}

/// One man page: its file name (`wgd-run.8`), section and roff text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub file_name: String,
    pub section: String,
    pub text: String,
}

impl Page {
    /// Writes the page as `dir/<file_name>`; its path.
    pub fn write_to(&self, dir: &Path) -> io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(&self.file_name);
        std::fs::write(&path, &self.text)?;
        Ok(path)
    }
}

/// A man page from a plain-text description, as kept in the tree for
/// `wgd.toml(5)`. `title` and `section` make the page's `.TH` line
/// (`wgd.toml`, `5`), `source` its footer (`wgd 0.1.0`).
///
/// The markup, one construct per line:
/// - `# NAME` starts a section, `## Name` a subsection;
/// - a blank line ends a paragraph;
/// - `: term` starts a definition; the lines after it indented by four
///   spaces are its text;
/// - lines between two lines of three backquotes are shown as they are
///   (an example);
/// - `` `code` `` in text is set in bold;
/// - anything else is text, filled into paragraphs.
pub fn format_page(title: &str, section: &str, source: &str, description: &str) -> Page {
    let mut roff = String::new();
    let _ = writeln!(
        roff,
        ".TH {} {section} \"\" \"{}\" \"wgd\"",
        quote(&title.to_uppercase()),
        escape(source)
    );
    let mut example = false;
    for line in description.lines() {
        if line.trim_end() == "```" {
            roff.push_str(if example {
                ".fi\n.RE\n"
            } else {
                ".RS 4\n.nf\n"
            });
            example = !example;
        } else if example {
            let _ = writeln!(roff, "\\&{}", escape(line));
        } else if let Some(heading) = line.strip_prefix("## ") {
            let _ = writeln!(roff, ".SS {}", quote(heading));
        } else if let Some(heading) = line.strip_prefix("# ") {
            let _ = writeln!(roff, ".SH {}", quote(heading));
        } else if let Some(term) = line.strip_prefix(": ") {
            let _ = writeln!(roff, ".TP\n{}", inline(term.trim(), true));
        } else if line.trim().is_empty() {
            roff.push_str(".PP\n");
        } else {
            let _ = writeln!(roff, "{}", inline(line.trim(), false));
        }
    }
    // Paragraph breaks right after a heading or a term are noise to
    // man(1) but not harmful; two in a row are folded.
    while roff.contains(".PP\n.PP\n") {
        roff = roff.replace(".PP\n.PP\n", ".PP\n");
    }
    Page {
        file_name: format!("{title}.{section}"),
        section: section.to_owned(),
        text: roff,
    }
}

/// A line of text with `code` spans in bold (all of it in bold for a
/// definition's term).
fn inline(text: &str, term: bool) -> String {
    let mut out = String::from(if term { "\\fB" } else { "" });
    let mut code = false;
    for (index, part) in text.split('`').enumerate() {
        if index > 0 {
            code = !code;
            out.push_str(match (term, code) {
                (false, true) => "\\fB",
                (false, false) => "\\fR",
                (true, _) => "",
            });
        }
        out.push_str(&escape(part));
    }
    if term || code {
        out.push_str("\\fR");
    }
    // A line that starts with a dot or a quote would be read as a request.
    if out.starts_with(['.', '\'']) {
        out.insert_str(0, "\\&");
    }
    out
}

/// Text with roff's special characters escaped.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// A macro argument, quoted when it has spaces.
fn quote(text: &str) -> String {
    let text = escape(text);
    if text.contains(' ') {
        format!("\"{}\"", text.replace('"', "\\(dq"))
    } else {
        text
    }
}

/// Where a build script of the workspace writes the pages and
/// completions for packaging: `<target dir>/<profile>/share`, from the
/// `OUT_DIR` cargo gives it (`<target dir>/<profile>/build/<package>-<hash>/out`).
/// `cargo deb` finds it as `target/release/share`, whatever the real
/// target dir. `None` when `OUT_DIR` is laid out otherwise.
pub fn share_dir() -> Option<PathBuf> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR")?);
    let build = out.parent()?.parent()?;
    if build.file_name()? != "build" {
        return None;
    }
    Some(build.parent()?.join("share"))
}

/// Writes `pages` under `share/<program>/man/man<section>/`, compressed
/// as Debian policy wants them (`wgd.8.gz`: gzip at its best, no name, no
/// time), and the program's completions for every shell under
/// `share/<program>/` (`bash-completion/completions/wgd`); the paths
/// written. What an earlier run left in `share/<program>` goes first, so
/// a command that is gone takes its page with it.
pub fn install(share: &Path, command: &clap::Command, pages: &[Page]) -> io::Result<Vec<PathBuf>> {
    let share = share.join(command.get_name());
    match std::fs::remove_dir_all(&share) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut written = Vec::new();
    for page in pages {
        let dir = share.join("man").join(format!("man{}", page.section));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.gz", page.file_name));
        let mut gzip = flate2::GzBuilder::new()
            .write(std::fs::File::create(&path)?, flate2::Compression::best());
        gzip.write_all(page.text.as_bytes())?;
        gzip.finish()?;
        written.push(path);
    }
    for shell in Shell::value_variants() {
        let path = share.join(shell.install_path(command.get_name()));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut text = Vec::new();
        completions(command.clone(), *shell, &mut text);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    #[derive(Debug, Parser)]
    #[command(name = "tool", version = "1.2", about = "Does things")]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, Subcommand)]
    enum Command {
        /// Start it.
        Start {
            /// How hard.
            #[arg(long)]
            force: bool,
        },
        /// Internal.
        #[command(hide = true)]
        Secret,
    }

    #[test]
    fn a_page_for_the_program_and_each_visible_command() {
        let pages = command_pages(
            <Cli as clap::CommandFactory>::command(),
            "8",
            &["tool.toml(5)"],
        );
        let names: Vec<&str> = pages.iter().map(|page| page.file_name.as_str()).collect();
        assert_eq!(names, ["tool.8", "tool-start.8"]);
        assert!(pages[0].text.contains("\n.TH TOOL 8 "), "{}", pages[0].text);
        assert!(pages[0].text.contains("tool\\-start(8)"));
        assert!(
            pages[0].text.ends_with(".SH \"SEE ALSO\"\ntool.toml(5)\n"),
            "{}",
            pages[0].text
        );
        assert!(pages[1].text.contains("\\-\\-force"), "{}", pages[1].text);
        assert!(pages[1].text.ends_with("tool(8), tool.toml(5)\n"));
    }

    #[test]
    fn the_description_markup_becomes_roff() {
        let page = format_page(
            "tool.toml",
            "5",
            "tool 1.2",
            "# NAME\ntool.toml - settings\n\n# KEYS\n: api = \"unix:/run/x\"\n    Where `tool` listens.\n    .dots are text\n\n```\n[daemon]\n.x = 1\n```\n",
        );
        assert_eq!(page.file_name, "tool.toml.5");
        assert_eq!(
            page.text,
            ".TH TOOL.TOML 5 \"\" \"tool 1.2\" \"wgd\"\n.SH NAME\ntool.toml \\- settings\n.PP\n\
             .SH KEYS\n.TP\n\\fBapi = \"unix:/run/x\"\\fR\nWhere \\fBtool\\fR listens.\n\\&.dots are text\n\
             .PP\n.RS 4\n.nf\n\\&[daemon]\n\\&.x = 1\n.fi\n.RE\n"
        );
    }

    #[test]
    fn completions_name_the_commands() {
        for shell in Shell::value_variants() {
            let mut text = Vec::new();
            completions(<Cli as clap::CommandFactory>::command(), *shell, &mut text);
            let text = String::from_utf8(text).unwrap();
            assert!(text.contains("start"), "{shell:?}: {text}");
            assert!(text.contains("force"), "{shell:?}: {text}");
        }
    }

    #[test]
    fn install_lays_the_files_out_as_under_usr_share() {
        let dir = tempfile::tempdir().unwrap();
        let command = <Cli as clap::CommandFactory>::command();
        let pages = command_pages(command.clone(), "8", &[]);
        // A page of a command that is gone, from an earlier run.
        let stale = dir.path().join("tool/man/man8/tool-gone.8.gz");
        std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
        std::fs::write(&stale, "").unwrap();
        let written = install(dir.path(), &command, &pages).unwrap();
        assert!(!stale.exists());
        let relative: Vec<String> = written
            .iter()
            .map(|path| {
                let path = path.strip_prefix(dir.path().join("tool")).unwrap();
                path.display().to_string()
            })
            .collect();
        assert_eq!(
            relative,
            [
                "man/man8/tool.8.gz",
                "man/man8/tool-start.8.gz",
                "bash-completion/completions/tool",
                "zsh/vendor-completions/_tool",
                "fish/vendor_completions.d/tool.fish",
            ]
        );
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(&written[0]).unwrap()),
            &mut text,
        )
        .unwrap();
        assert_eq!(text, pages[0].text);
    }
}
