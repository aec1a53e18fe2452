//! Paths of this machine where a snapshot path is expected (`log`, `cat`,
//! `ls`, `restore SNAP:PATH`, `diff`): `/...`, `./...` and `../...` are
//! translated to the snapshot path below the source that holds them; any
//! other argument is a snapshot path as before. And the nearest path that
//! exists, with a close name, when a path is in no snapshot.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Env, assert_code, stderr_text};

/// `home/me/app/notes/n3.md` (and a sibling) backed up as the source
/// `home/me/app`, then n3.md changed and backed up again.
struct Backed {
    env: Env,
    /// The source folder, `.../home/me/app` (canonical).
    app: PathBuf,
}

fn backed() -> Backed {
    let env = Env::new();
    let app = fs::canonicalize(env.dir.path())
        .unwrap()
        .join("home/me/app");
    fs::create_dir_all(app.join("notes")).unwrap();
    fs::write(app.join("notes/n3.md"), "first\n").unwrap();
    fs::write(app.join("notes/todo.md"), "todo\n").unwrap();
    env.backup(&[&app], &[]);
    fs::write(app.join("notes/n3.md"), "second version\n").unwrap();
    env.backup(&[&app], &[]);
    Backed { env, app }
}

fn arg(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// `snap ARGS` run in `dir`, which must succeed; stdout as text.
#[track_caller]
fn ok_in(env: &Env, dir: &Path, args: &[&str]) -> String {
    String::from_utf8(common::run_ok(env.cmd().current_dir(dir).args(args))).unwrap()
}

#[test]
fn log_takes_a_path_of_this_machine() {
    let b = backed();
    let inside = b.env.json(["log", "app/notes/n3.md"]);
    assert_eq!(inside.as_array().unwrap().len(), 2, "{inside}");
    let absolute = b.env.json(["log", &arg(&b.app.join("notes/n3.md"))]);
    assert_eq!(absolute, inside);
    let dot = common::run_json(
        b.env
            .cmd()
            .current_dir(b.app.join("notes"))
            .args(["--json", "log", "./n3.md"]),
    );
    assert_eq!(dot, inside);
    let up = common::run_json(b.env.cmd().current_dir(b.app.join("notes")).args([
        "--json",
        "log",
        "../notes/./n3.md",
    ]));
    assert_eq!(up, inside);
    // The source folder itself is the snapshot's `app`.
    let folder = b.env.json(["log", &arg(&b.app)]);
    assert_eq!(folder, b.env.json(["log", "app"]));
}

#[test]
fn cat_ls_restore_and_diff_take_a_path_of_this_machine() {
    let b = backed();
    let env = &b.env;
    let n3 = arg(&b.app.join("notes/n3.md"));
    assert_eq!(
        env.ok(["cat", &format!("latest:{n3}")]),
        b"second version\n"
    );
    assert_eq!(env.ok(["cat", &format!("latest~1:{n3}")]), b"first\n");
    assert_eq!(
        ok_in(env, &b.app, &["ls", "latest:./notes"]),
        "app/notes/n3.md\napp/notes/todo.md\n"
    );
    assert_eq!(
        ok_in(env, &b.app.join("notes"), &["ls", "latest:../notes"]),
        ok_in(env, &b.app, &["ls", "latest:app/notes"]),
    );
    // A file deleted from this machine is still named by its old path.
    fs::remove_file(b.app.join("notes/n3.md")).unwrap();
    let target = env.path("restored");
    env.ok([
        "restore",
        &format!("latest~1:{n3}"),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(target.join("n3.md")).unwrap(), b"first\n");
    let snaps = env.snapshots();
    let (first, second) = (
        snaps[0]["id"].as_str().unwrap(),
        snaps[1]["id"].as_str().unwrap(),
    );
    let by_host = String::from_utf8(env.ok(["diff", first, second, &n3])).unwrap();
    assert_eq!(
        by_host,
        String::from_utf8(env.ok(["diff", first, second, "app/notes/n3.md"])).unwrap()
    );
    assert!(by_host.starts_with("M app/notes/n3.md\n"), "{by_host}");
}

#[test]
fn a_path_through_a_symlinked_folder_is_resolved_like_the_source() {
    let b = backed();
    let link = b.env.path("shortcut");
    std::os::unix::fs::symlink(b.app.parent().unwrap(), &link).unwrap();
    let via_link = arg(&link.join("app/notes/todo.md"));
    assert_eq!(b.env.ok(["cat", &format!("latest:{via_link}")]), b"todo\n");
}

#[test]
fn a_path_of_this_machine_outside_every_source_is_one_clear_line() {
    let b = backed();
    let elsewhere = arg(&b.env.path("elsewhere/file.txt"));
    let snapshot = |env: &Env| {
        (
            common::contents(&env.path("home")),
            common::contents(&env.repo),
        )
    };
    let before = snapshot(&b.env);
    for args in [
        vec!["log".to_string(), elsewhere.clone()],
        vec!["cat".to_string(), format!("latest:{elsewhere}")],
        vec!["ls".to_string(), "latest:/".to_string()],
        vec![
            "restore".to_string(),
            format!("latest:{elsewhere}"),
            "--target".to_string(),
            arg(&b.env.path("never")),
        ],
    ] {
        let out = b.env.run(&args);
        assert_code(&out, 10);
        let err = stderr_text(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("path of this machine"), "{args:?}: {err}");
        assert!(err.contains(&arg(&b.app)), "names the source: {err}");
    }
    assert!(!b.env.path("never").exists());
    assert!(
        snapshot(&b.env) == before,
        "the source or the repository changed"
    );
    // Without the prefixes, the same text is a snapshot path as before.
    assert_eq!(b.env.ok(["cat", "latest:app/notes/todo.md"]), b"todo\n");
}

#[test]
fn a_missing_path_names_the_nearest_one_and_a_close_name() {
    let b = backed();
    let env = &b.env;
    let out = env.run(["cat", "latest:app/notes/n4.md"]);
    assert_code(&out, 10);
    let err = stderr_text(&out);
    assert!(
        err.contains("nearest path that exists is `app/notes`")
            && err.contains("did you mean `app/notes/n3.md`?"),
        "{err}"
    );
    let out = env.run(["log", "app/note/n3.md"]);
    assert_code(&out, 10);
    let err = stderr_text(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("is in no snapshot")
            && err.contains("nearest path that exists is `app`")
            && err.contains("did you mean `app/notes`?"),
        "{err}"
    );
    // Nothing close: the nearest path alone.
    let out = env.run(["ls", "latest:app/zzzzzz/x"]);
    assert_code(&out, 10);
    let err = stderr_text(&out);
    assert!(
        err.contains("nearest path that exists is `app`") && !err.contains("did you mean"),
        "{err}"
    );
    // The root is the nearest when the first name is unknown; case is forgiven.
    let out = env.run(["ls", "latest:App/notes"]);
    assert_code(&out, 10);
    let err = stderr_text(&out);
    assert!(
        err.contains("the snapshot root") && err.contains("did you mean `app`?"),
        "{err}"
    );
    // A host path is hinted in snapshot terms.
    let out = env.run(["log", &arg(&b.app.join("notes/n4.md"))]);
    assert_code(&out, 10);
    assert!(
        stderr_text(&out).contains("did you mean `app/notes/n3.md`?"),
        "{}",
        stderr_text(&out)
    );
    let snaps = env.snapshots();
    let out = env.run([
        "diff",
        snaps[0]["id"].as_str().unwrap(),
        snaps[1]["id"].as_str().unwrap(),
        "app/notes/todo",
    ]);
    assert_code(&out, 10);
    assert!(
        stderr_text(&out).contains("did you mean `app/notes/todo.md`?"),
        "{}",
        stderr_text(&out)
    );
}

#[test]
fn find_takes_a_glob_of_this_machine() {
    let b = backed();
    let inside = b.env.json(["find", "app/notes/*.md"]);
    assert_eq!(inside.as_array().unwrap().len(), 2, "{inside}");
    let host = b.env.json(["find", &format!("{}/notes/*.md", arg(&b.app))]);
    assert_eq!(host, inside);
    let relative =
        common::run_json(
            b.env
                .cmd()
                .current_dir(&b.app)
                .args(["--json", "find", "./**/todo.md"]),
        );
    assert_eq!(
        relative[0]["paths"],
        serde_json::json!(["app/notes/todo.md"])
    );
    let out = b.env.run(["find", &arg(&b.env.path("elsewhere/*.md"))]);
    assert_code(&out, 10);
    assert!(
        stderr_text(&out).contains("path of this machine"),
        "{}",
        stderr_text(&out)
    );
}
