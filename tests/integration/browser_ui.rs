//! `snap ui` in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) clicks through the pages of a server started by the
//! real binary on a repository the test makes, the way a user would:
//! timeline, snapshot, file, the file's history, a diff of two versions, a
//! download (its bytes checked), and a restore through the confirmation
//! dialog (the file on disk checked after). Skipped without the browser,
//! failed under CI.
//!
//! `cargo test --test integration browser_ui::screenshots -- --ignored`
//! saves the screenshots in docs/img/ (run by hand when the pages change).

use crate::common;

use std::path::{Path, PathBuf};

use fantoccini::Client;

use common::Env;
use common::browser::{
    all, browser_tools, click, text_of, wait_for, wait_for_download, with_browser,
};

use crate::cli_ui::UiServer;

/// The address the server printed, with its token.
fn token_url(server: &UiServer) -> String {
    format!("http://{}/?token={}", server.addr, server.token)
}

/// `path` (starting with `/`) on the server.
fn at(server: &UiServer, path: &str) -> String {
    format!("http://{}{path}", server.addr)
}

/// The folder the test backs up: text files, an image and a SQLite
/// database, changed between four snapshots.
struct Sample {
    env: Env,
    /// The backed-up folder.
    src: PathBuf,
}

/// The versions of `notes/todo.txt`, one per snapshot.
const TODO: [&str; 4] = [
    "buy milk\ncall the plumber\nwater the garden\n",
    "buy milk\ncall the plumber\nwater the garden\nwrite to Anna\n",
    "buy oat milk\ncall the plumber\nwrite to Anna\n",
    "buy oat milk\nwrite to Anna\nbook the train\n",
];

impl Sample {
    /// A repository with four snapshots of the sample folder, a day apart.
    fn new() -> Self {
        Self::with_snapshots(4, 24)
    }

    /// A repository with `count` (at least 4) snapshots of the sample
    /// folder, `hours` apart from 1 November 2026: the first four hold the
    /// [`TODO`] versions, later ones the last with one line of their own.
    fn with_snapshots(count: usize, hours: i64) -> Self {
        let env = Env::new();
        let src = env.path("data");
        std::fs::create_dir_all(src.join("notes")).unwrap();
        std::fs::write(
            src.join("notes/readme.md"),
            "# Notes\n\nThe things to do this week.\n",
        )
        .unwrap();
        std::fs::write(src.join("photo.png"), png(96, 64)).unwrap();
        let db = rusqlite::Connection::open(src.join("app.db")).unwrap();
        db.execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL);
             INSERT INTO items VALUES (1, 'apples', 3), (2, 'pears', 5), (3, 'plums', 7);",
        )
        .unwrap();
        let sample = Self { env, src };
        let changes = [
            "",
            "UPDATE items SET qty = 4 WHERE id = 1;",
            "DELETE FROM items WHERE id = 2; INSERT INTO items VALUES (4, 'figs', 2);",
            "UPDATE items SET name = 'green plums' WHERE id = 3;",
        ];
        let start = jiff::Timestamp::from_second(1_793_520_000).unwrap(); // 2026-11-01 08:00 UTC
        for i in 0..count {
            let mut todo = TODO[i.min(3)].to_string();
            if i > 3 {
                todo.push_str(&format!("note from session {i}\n"));
            }
            std::fs::write(sample.src.join("notes/todo.txt"), todo).unwrap();
            match changes.get(i) {
                Some(sql) => db.execute_batch(sql).unwrap(),
                None => db
                    .execute("UPDATE items SET qty = qty + 1 WHERE id = 1", [])
                    .map(drop)
                    .unwrap(),
            }
            let time = start + jiff::SignedDuration::from_hours(hours * i as i64);
            sample
                .env
                .backup(&[&sample.src], &["--time", &time.to_string()]);
        }
        drop(db);
        sample
    }
}

/// A `width`x`height` RGB PNG of a colour gradient, written with stored
/// (uncompressed) deflate blocks so no image crate is needed.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.extend([(x * 255 / width) as u8, (y * 255 / height) as u8, 160]);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());
    let mut header = Vec::new();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, no filter, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", header), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        out.extend((data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend(data);
        out.extend_from_slice(&chunk);
        out.extend(crc32(&chunk).to_be_bytes());
    }
    out
}

/// CRC-32 (IEEE), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Clicks the `.entry a` link named `name` in the snapshot page's folder
/// listing, first going down the folders that lead to the backed-up folder
/// (a snapshot's root holds the source's absolute path, one folder a level).
async fn open_entry(client: &Client, name: &str) {
    for _ in 0..32 {
        wait_for(client, "table#entries").await;
        let mut dirs = Vec::new();
        for link in all(client, ".entry a").await {
            let text = link.text().await.unwrap();
            if text.trim_end_matches('/') == name {
                return follow(client, link).await;
            }
            if link.attr("data-kind").await.unwrap().as_deref() == Some("dir") {
                dirs.push(link);
            }
        }
        match dirs.len() {
            1 => follow(client, dirs.pop().unwrap()).await,
            _ => panic!(
                "no entry `{name}` on {}, and not one folder to go down",
                client.current_url().await.unwrap()
            ),
        }
    }
    panic!("no entry `{name}` 32 folders down");
}

/// Clicks a link and waits until the browser is on another address.
async fn follow(client: &Client, link: fantoccini::elements::Element) {
    let before = client.current_url().await.unwrap();
    link.click().await.unwrap();
    for _ in 0..300 {
        if client.current_url().await.unwrap() != before {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("clicking a link on {before} went nowhere");
}

/// Clicks the element `css` selects and waits for another address.
async fn click_through(client: &Client, css: &str) {
    let element = wait_for(client, css).await;
    follow(client, element).await;
}

/// The texts of every element `css` selects.
async fn texts(client: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in all(client, css).await {
        out.push(element.text().await.unwrap());
    }
    out
}

/// Picks the oldest version as `a` and the newest as `b` on a history page
/// (rows newest first) and opens the comparison.
async fn compare_oldest_with_newest(client: &Client, versions: usize) {
    let rows = all(client, ".version").await;
    assert_eq!(
        rows.len(),
        versions,
        "{:?}",
        texts(client, ".version").await
    );
    let a = all(client, "input[name=a]").await;
    let b = all(client, "input[name=b]").await;
    assert_eq!((a.len(), b.len()), (versions, versions));
    a.last().unwrap().click().await.unwrap();
    b.first().unwrap().click().await.unwrap();
    click_through(client, "#compare").await;
}

#[test]
fn timeline_snapshot_file_history_diff_and_download_in_a_browser() {
    let Some(tools) = browser_tools() else { return };
    let sample = Sample::new();
    let server = UiServer::start(sample.env.spawnable(), &[]);
    let (url, home) = (token_url(&server), at(&server, "/"));
    let downloads = sample.env.path("browser/downloads");
    with_browser(&tools, &sample.env.path("browser"), async move |client| {
        // The token address, traded for a cookie: the bare address opens too.
        client.goto(&url).await.unwrap();
        client.goto(&home).await.unwrap();
        let timeline = wait_for(&client, "section#timeline").await;
        assert_eq!(
            timeline.attr("data-snapshots").await.unwrap().as_deref(),
            Some("4")
        );
        wait_for(&client, "svg#chart").await;
        assert_eq!(
            all(&client, "#calendar a.day").await.len(),
            4,
            "one day a snapshot"
        );
        assert_eq!(all(&client, ".snapshot-row a").await.len(), 4);

        // The newest snapshot (listed first), down to notes/todo.txt.
        click_through(&client, ".snapshot-row a").await;
        open_entry(&client, "notes").await;
        open_entry(&client, "todo.txt").await;
        wait_for(&client, "#file").await;
        let lines = texts(&client, "table#text td.ln").await;
        assert_eq!(lines, ["1", "2", "3"]);
        assert!(
            text_of(&client, "table#text")
                .await
                .contains("book the train")
        );

        // Its download is the file's bytes.
        click(&client, "a.download").await;
        let file = wait_for_download(&downloads).await;
        assert_eq!(
            std::fs::read(&file).unwrap(),
            TODO[3].as_bytes(),
            "{}",
            file.display()
        );

        // Every version, and the oldest against the newest side by side.
        click_through(&client, "a#history-link").await;
        compare_oldest_with_newest(&client, 4).await;
        wait_for(&client, "table#diff").await;
        let removed = texts(&client, "table#diff .del").await.join("\n");
        let added = texts(&client, "table#diff .add").await.join("\n");
        assert!(removed.contains("water the garden"), "removed: {removed}");
        assert!(added.contains("book the train"), "added: {added}");
        assert!(!added.contains("water the garden"), "added: {added}");

        // The image shows (the browser decoded it: the page's policy let it load).
        client.back().await.unwrap();
        client.back().await.unwrap();
        client.back().await.unwrap();
        open_entry(&client, "photo.png").await;
        let image = wait_for(&client, "img#image").await;
        let width = client
            .execute(
                "return arguments[0].complete ? arguments[0].naturalWidth : -1;",
                vec![serde_json::to_value(&image).unwrap()],
            )
            .await
            .unwrap();
        assert_eq!(width, serde_json::json!(96), "the image did not load");

        // The database: its tables, and the rows added, removed and changed.
        client.back().await.unwrap();
        open_entry(&client, "app.db").await;
        click_through(&client, "a#history-link").await;
        compare_oldest_with_newest(&client, 4).await;
        wait_for(&client, "#sqlite").await;
        assert!(text_of(&client, "table#tables").await.contains("items"));
        // figs added, pears removed, apples and plums changed.
        let items = text_of(&client, "table#row-diff tr[data-table=items]").await;
        let counts: Vec<&str> = items.split_whitespace().collect();
        assert_eq!(counts, ["items", "1", "1", "2"], "{items}");
    });
}

#[test]
fn restore_a_file_to_its_place_through_the_confirmation_page() {
    let Some(tools) = browser_tools() else { return };
    let sample = Sample::new();
    let todo = sample.src.join("notes/todo.txt");
    std::fs::write(&todo, "scribbled over by mistake\n").unwrap();
    let server = UiServer::start(sample.env.spawnable(), &["--allow-restore"]);
    let url = token_url(&server);
    let second = sample.env.snapshots()[1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let page = at(
        &server,
        &format!("/snapshot/{second}?path={}", todo.display()),
    );
    with_browser(&tools, &sample.env.path("browser"), async move |client| {
        client.goto(&url).await.unwrap();
        client.goto(&page).await.unwrap();
        assert!(
            text_of(&client, "table#text")
                .await
                .contains("write to Anna")
        );
        wait_for(&client, "form#restore").await;
        click_through(&client, "#restore-button").await;
        // The plan names what would be replaced; nothing happened yet.
        assert!(text_of(&client, "#plan").await.contains("todo.txt"));
        assert!(all(&client, "#restored").await.is_empty());
        wait_for(&client, "form#confirm-form").await;
        click_through(&client, "#confirm").await;
        wait_for(&client, "#restored").await;
        assert!(!text_of(&client, "#safety-snapshot").await.trim().is_empty());
    });
    assert_eq!(std::fs::read_to_string(&todo).unwrap(), TODO[1]);
    // The safety snapshot taken first still holds what was replaced.
    let snapshots = sample.env.snapshots();
    assert_eq!(snapshots.len(), 5, "{snapshots:?}");
    let safety = snapshots[4]["id"].as_str().unwrap();
    let kept = sample
        .env
        .ok(["cat", &format!("{safety}:{}", todo.display())]);
    assert_eq!(kept, b"scribbled over by mistake\n");
}

/// Saves a screenshot of every page type in docs/img/ui-NAME.png, 1280x800,
/// from a sample with five weeks of snapshots. Run by hand when the pages
/// change: `cargo test --test integration browser_ui::screenshots -- --ignored`.
#[test]
#[ignore = "writes docs/img/; run by hand"]
fn screenshots() {
    let Some(tools) = browser_tools() else { return };
    let sample = Sample::with_snapshots(30, 29);
    let img = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img");
    std::fs::create_dir_all(&img).unwrap();
    let server = UiServer::start(sample.env.spawnable(), &["--allow-restore"]);
    let snapshots = sample.env.snapshots();
    let latest = snapshots.last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let todo = sample.src.join("notes/todo.txt");
    let db = sample.src.join("app.db");
    let (first_db, last_db) = (snapshots[1]["id"].as_str().unwrap(), &latest);
    let pages = [
        ("timeline", "/".to_string(), "section#timeline"),
        (
            "snapshot",
            format!("/snapshot/{latest}?path={}", sample.src.display()),
            "table#entries",
        ),
        (
            "file",
            format!("/snapshot/{latest}?path={}", todo.display()),
            "#file",
        ),
        (
            "changes",
            format!("/snapshot/{latest}/changes"),
            "table#changes",
        ),
        (
            "history",
            format!("/history?path={}", todo.display()),
            "table#history",
        ),
        (
            "diff",
            format!(
                "/compare?path={}&a={}&b={latest}",
                todo.display(),
                snapshots[0]["id"].as_str().unwrap()
            ),
            "table#diff",
        ),
        (
            "sqlite",
            format!("/compare?path={}&a={first_db}&b={last_db}", db.display()),
            "#sqlite",
        ),
        ("search", "/search?q=*.txt".to_string(), "#results"),
        ("health", "/health".to_string(), "#health"),
    ];
    let pages: Vec<(String, String, String)> = pages
        .into_iter()
        .map(|(name, path, hook)| (name.to_string(), at(&server, &path), hook.to_string()))
        .collect();
    let url = token_url(&server);
    let out = img.clone();
    with_browser(&tools, &sample.env.path("browser"), async move |client| {
        client.goto(&url).await.unwrap();
        // A viewport of 1280x800: the window is that plus the browser's frame.
        let frame = client
            .execute("return window.outerHeight - window.innerHeight;", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap();
        client
            .set_window_size(1280, 800 + frame as u32)
            .await
            .unwrap();
        for (name, page, hook) in pages {
            client.goto(&page).await.unwrap();
            wait_for(&client, &hook).await;
            let png = client.screenshot().await.unwrap();
            std::fs::write(out.join(format!("ui-{name}.png")), &png).unwrap();
        }
    });
    for entry in std::fs::read_dir(&img).unwrap() {
        let path = entry.unwrap().path();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 200_000, "{} is {size} bytes", path.display());
    }
}
