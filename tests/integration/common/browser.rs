//! A real browser for the `snap ui` tests: Debian's headless Chromium
//! driven over WebDriver (`chromedriver` on a free loopback port, spoken to
//! with fantoccini).
//!
//! The driver and its browser are killed when their handle drops, so a
//! failed test leaves no browser behind. Missing `chromium` or
//! `chromedriver` skips the test, or fails it under CI (see [`super::tools`]).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use super::tools::{find_program, require};

/// How long a page may take to show an element the test waits for.
pub const WAIT: Duration = Duration::from_secs(30);

/// The browser and its WebDriver, found on `PATH`.
pub struct BrowserTools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// `chromium` and `chromedriver`, or a skip (a failure under CI).
#[track_caller]
pub fn browser_tools() -> Option<BrowserTools> {
    let found = find_program("chromium")
        .zip(find_program("chromedriver"))
        .map(|(chromium, chromedriver)| BrowserTools {
            chromium,
            chromedriver,
        });
    require(
        found,
        "chromium and chromedriver",
        "apt-get install chromium chromium-driver",
    )
}

/// `chromedriver` on a free loopback port, in a process group of its own
/// so that dropping it also ends the browsers it started.
pub struct Driver {
    child: Child,
    port: u16,
    chromium: PathBuf,
}

impl Driver {
    /// Starts chromedriver and waits until its port takes connections.
    #[track_caller]
    pub fn start(tools: &BrowserTools, log: &Path) -> Self {
        let port = free_port();
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let mut driver = Self {
            child,
            port,
            chromium: tools.chromium.clone(),
        };
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!(
                    "chromedriver exited ({status}) before it listened; log: {}",
                    log.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    /// A new headless browser session, 1280x800, with its own profile in
    /// `profile` and downloads saved into `downloads` without asking.
    pub async fn session(&self, profile: &Path, downloads: &Path) -> Client {
        let options = serde_json::json!({
            "binary": self.chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--window-size=1280,800",
                "--hide-scrollbars",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
                "download.directory_upgrade": true,
                "safebrowsing.enabled": false,
            },
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "chrome".into());
        capabilities.insert("goog:chromeOptions".into(), options);
        ClientBuilder::rustls()
            .expect("a WebDriver client")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("start a browser session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browser it started.
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listened on a moment ago.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port()
}

/// Runs `test` with a browser session on a tokio runtime of its own, then
/// ends the session whether the test passed or not (a panic inside the test
/// is raised again after).
pub fn with_browser<F, Fut>(tools: &BrowserTools, scratch: &Path, test: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let profile = scratch.join("chromium-profile");
    let downloads = scratch.join("downloads");
    std::fs::create_dir_all(&downloads).expect("create the download folder");
    let driver = Driver::start(tools, &scratch.join("chromedriver.log"));
    runtime.block_on(async {
        let client = driver.session(&profile, &downloads).await;
        let outcome = tokio::spawn(test(client.clone())).await;
        let _ = client.close().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    });
    drop(driver);
}

/// The first element `css` selects, waited for up to [`WAIT`].
pub async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    let url = client.current_url().await.map(|u| u.to_string());
    match client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => {
            let text = match client.find(Locator::Css("body")).await {
                Ok(body) => body.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let text: String = text.chars().take(2000).collect();
            panic!("no `{css}` on {url:?} after {WAIT:?}: {e}\nthe page says:\n{text}");
        }
    }
}

/// Every element `css` selects on the current page (no wait).
pub async fn all(client: &Client, css: &str) -> Vec<fantoccini::elements::Element> {
    client
        .find_all(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("find `{css}`: {e}"))
}

/// The text of the first element `css` selects, waited for.
pub async fn text_of(client: &Client, css: &str) -> String {
    wait_for(client, css)
        .await
        .text()
        .await
        .expect("element text")
}

/// Clicks the first element `css` selects, waited for.
pub async fn click(client: &Client, css: &str) {
    wait_for(client, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
}

/// Waits until `dir` holds one finished download and nothing partial, and
/// returns its path.
pub async fn wait_for_download(dir: &Path) -> PathBuf {
    let deadline = Instant::now() + WAIT;
    loop {
        let names: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("list the download folder")
            .map(|e| e.expect("list the download folder").path())
            .collect();
        // Chromium writes into a hidden temporary file, then renames a
        // `.crdownload` part to the final name.
        let (partial, done): (Vec<&PathBuf>, Vec<&PathBuf>) = names.iter().partition(|p| {
            p.extension().is_some_and(|e| e == "crdownload")
                || p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        });
        if let ([], [one]) = (partial.as_slice(), done.as_slice()) {
            return (*one).clone();
        }
        assert!(
            Instant::now() < deadline,
            "no finished download in {} after {WAIT:?}: {names:?}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
