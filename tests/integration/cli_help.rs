//! The help, shell completions and man pages, read from the real binary:
//! the command tree is walked from `snap --help` (its "Commands:" sections),
//! never listed by hand, so a new command or flag is covered as it lands.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::{assert_code, run_ok, snap_bin, snap_command, stderr_text, tools};

/// One command of the tree: its path below `snap` (empty for `snap`
/// itself) and its `--help` text.
struct HelpPage {
    path: Vec<String>,
    text: String,
}

impl HelpPage {
    fn name(&self) -> String {
        if self.path.is_empty() {
            "snap".to_owned()
        } else {
            format!("snap {}", self.path.join(" "))
        }
    }

    /// The lines of the section under `heading` (e.g. "Options:").
    fn section(&self, heading: &str) -> Vec<&str> {
        self.text
            .lines()
            .skip_while(|line| *line != heading)
            .skip(1)
            .take_while(|line| line.is_empty() || line.starts_with(' '))
            .collect()
    }

    /// The names of the subcommands in the "Commands:" section, without
    /// clap's `help`.
    fn subcommands(&self) -> Vec<String> {
        self.section("Commands:")
            .iter()
            .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| *name != "help")
            .map(str::to_owned)
            .collect()
    }

    /// The long flags (`--repo`) declared in the section under `heading`:
    /// option lines start with a dash at most six columns in, their wrapped
    /// descriptions further in.
    fn long_flags(&self, heading: &str) -> BTreeSet<String> {
        self.section(heading)
            .iter()
            .filter(|line| {
                let indent = line.len() - line.trim_start().len();
                indent <= 6 && line.trim_start().starts_with('-')
            })
            .flat_map(|line| line.split(|c: char| c.is_whitespace() || c == ','))
            .filter(|word| word.starts_with("--"))
            .map(|word| {
                word.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .next()
                    .unwrap_or(word)
                    .to_owned()
            })
            .filter(|flag| flag != "--help" && flag != "--version")
            .collect()
    }

    /// The example command lines at the end of the help.
    fn examples(&self) -> Vec<&str> {
        self.section("Examples:")
            .iter()
            .map(|line| line.trim())
            .filter(|line| line.starts_with("snap "))
            .collect()
    }
}

/// `snap ... --help` for every command and subcommand, `snap` first.
fn help_pages() -> Vec<HelpPage> {
    let mut pages = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let out = run_ok(snap_command().args(&path).arg("--help"));
        let page = HelpPage {
            path,
            text: String::from_utf8(out).expect("help is UTF-8"),
        };
        for sub in page.subcommands() {
            let mut sub_path = page.path.clone();
            sub_path.push(sub);
            todo.push(sub_path);
        }
        pages.push(page);
    }
    pages.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(
        pages.len() > 20,
        "the walk found only {} commands",
        pages.len()
    );
    pages
}

fn docs_text() -> String {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut text = std::fs::read_to_string(docs.join("CLI.md")).expect("read docs/CLI.md");
    for entry in std::fs::read_dir(docs.join("commands")).expect("read docs/commands") {
        let path = entry.expect("list docs/commands").path();
        if path.extension().is_some_and(|ext| ext == "md") {
            text.push_str(&std::fs::read_to_string(&path).expect("read a command page"));
        }
    }
    text
}

/// Whether `flag` appears in `text` as itself, not as the start of a
/// longer flag (`--key` in `--key-file`).
fn mentions_flag(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(at, _)| {
        !text[at + flag.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

#[test]
fn every_help_has_the_global_options_heading_and_examples() {
    let pages = help_pages();
    let global = pages[0].long_flags("Global options:");
    for flag in [
        "--repo",
        "--password-file",
        "--key-file",
        "--json",
        "--quiet",
        "--config",
    ] {
        assert!(
            global.contains(flag),
            "`snap --help` lacks {flag} under Global options"
        );
    }
    for page in &pages {
        let name = page.name();
        assert_eq!(
            page.long_flags("Global options:"),
            global,
            "{name} --help: the Global options section differs from snap's\n{}",
            page.text
        );
        let mixed: Vec<_> = page
            .long_flags("Options:")
            .intersection(&global)
            .cloned()
            .collect();
        assert!(
            mixed.is_empty(),
            "{name} --help lists {mixed:?} among its own options"
        );
        if !page.path.is_empty() {
            let examples = page.examples();
            assert!(
                examples.len() >= 2,
                "{name} --help has no Examples section with two or more examples\n{}",
                page.text
            );
        }
    }
}

/// Every example parses as printed: run through `sh` (quotes, `$(...)`,
/// `~`) up to a redirection, pipe or `&&`, with a `--config` that does
/// not exist put in first, so that each stops right after parsing with the
/// profile error, never doing anything; an example clap rejects fails
/// with its usage error instead.
#[test]
fn every_example_parses() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(snap_bin(), bin.join("snap")).unwrap();
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let missing = dir.path().join("missing/snap.toml");
    for page in help_pages() {
        for example in page.examples() {
            let command = [" > ", " | ", " && "]
                .iter()
                .filter_map(|op| example.find(op))
                .min()
                .map_or(example, |end| &example[..end]);
            let line = command.replacen(
                "snap ",
                &format!("snap --config '{}' ", missing.display()),
                1,
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&line)
                .current_dir(dir.path())
                .env("PATH", &path)
                .env("HOME", dir.path())
                .env_remove("SNAP_REPO")
                .env_remove("SNAP_CONFIG")
                .output()
                .expect("run sh");
            let stderr = stderr_text(&out);
            assert!(
                stderr.contains("cannot read profile") && !stderr.contains("error:"),
                "{}: the example `{example}` does not parse:\n{stderr}",
                page.name()
            );
        }
    }
}

#[test]
fn every_long_flag_is_documented() {
    let docs = docs_text();
    let mut missing = Vec::new();
    let mut seen = BTreeSet::new();
    for page in help_pages() {
        let flags = page.long_flags("Options:");
        for flag in flags.union(&page.long_flags("Global options:")) {
            let flag = flag.clone();
            if !mentions_flag(&docs, &flag) {
                missing.push(format!("{}: {flag}", page.name()));
            }
            seen.insert(flag);
        }
    }
    // The walk reads the flags of every command, not a few.
    for flag in [
        "--keep-daily",
        "--overwrite",
        "--from-key-file",
        "--no-read-data",
        "--write-only",
    ] {
        assert!(
            seen.contains(flag),
            "{flag} not found in any --help: {seen:?}"
        );
    }
    assert!(
        missing.is_empty(),
        "flags in --help that neither docs/CLI.md nor docs/commands/*.md mention:\n{}",
        missing.join("\n")
    );
}

#[test]
fn bash_completion_completes_every_subcommand() {
    let script = dir_with_script();
    for page in help_pages() {
        let subs = page.subcommands();
        if subs.is_empty() {
            continue;
        }
        // Completes the word after the command's path, as bash would
        // after `snap key <TAB>`.
        let mut words: Vec<String> = vec!["snap".into()];
        words.extend(page.path.iter().cloned());
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let prev = words.last().cloned().unwrap_or_default();
        let program = format!(
            "source '{}'; COMP_WORDS=({} ''); COMP_CWORD={}; _snap snap '' '{prev}'; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.1.display(),
            quoted.join(" "),
            words.len(),
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&program)
            .output()
            .expect("run bash");
        assert_code(&out, 0);
        let offered: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        for sub in subs {
            assert!(
                offered.contains(&sub),
                "bash completion after `{}` does not offer {sub}: {offered:?}",
                page.name()
            );
        }
    }
}

/// The bash script in a temporary folder (kept alive by the first half).
fn dir_with_script() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.bash");
    std::fs::write(&path, run_ok(snap_command().args(["completions", "bash"]))).unwrap();
    (dir, path)
}

#[test]
fn every_shell_gets_a_script_and_others_are_refused() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = run_ok(snap_command().args(["completions", shell]));
        let script = String::from_utf8(script).unwrap();
        assert!(
            script.contains("snap")
                && script.contains("backup")
                && script.contains("password-file"),
            "the {shell} script does not look like snap's"
        );
    }
    let out = snap_command()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_code(&out, 2);
    assert!(
        stderr_text(&out).contains("possible values"),
        "{}",
        stderr_text(&out)
    );
}

#[test]
fn man_writes_a_readable_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let json = crate::common::run_json(snap_command().arg("man").arg(dir.path()).arg("--json"));
    let listed: BTreeSet<String> = json["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let written: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(listed, written);
    let man = tools::find_program("man");
    for page in help_pages() {
        let file = format!("{}.1", page.name().replace(' ', "-"));
        assert!(written.contains(&file), "no {file} among {written:?}");
        let roff = std::fs::read_to_string(dir.path().join(&file)).unwrap();
        // What a man page needs: a title line, a NAME section naming the
        // command (dashes escaped as roff wants), a SYNOPSIS.
        let title = format!(".TH {} 1", page.name().replace(' ', "-"));
        assert!(roff.contains(&title), "{file} has no `{title}` line");
        let name_line = page.name().replace(' ', "-").replace('-', "\\-");
        assert!(
            roff.contains(".SH NAME") && roff.contains(&name_line) && roff.contains(".SH SYNOPSIS"),
            "{file} lacks NAME or SYNOPSIS:\n{roff}"
        );
        if let Some(man) = &man {
            let out = std::process::Command::new(man)
                .arg("-l")
                .arg(dir.path().join(&file))
                .env("MANPAGER", "cat")
                .env("PAGER", "cat")
                .env("MANWIDTH", "100")
                .output()
                .expect("run man");
            assert_code(&out, 0);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("NAME") && text.contains("SYNOPSIS"),
                "man -l {file}:\n{text}"
            );
        }
    }
}

#[test]
fn man_refuses_a_folder_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/folder");
    let out = snap_command().arg("man").arg(&missing).output().unwrap();
    assert_code(&out, 2);
    let stderr = stderr_text(&out);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("is not an existing folder"), "{stderr}");
    assert!(!missing.exists() && !dir.path().join("no").exists());
    // A file is not a folder either.
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let out = snap_command().arg("man").arg(&file).output().unwrap();
    assert_code(&out, 2);
}
