//! `snap ls`

use snap::NodeKind;
use snap::ops::browse::{find_node, walk};
use snap::ops::paths::inside;
use snap::select::{Filter, parse_snap_path, resolve};

use super::output;
use super::{Global, exit};

/// List the entries of a snapshot or of a folder in it.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// SNAP[:PATH], e.g. latest:lyra/memories (PATH may be a path of this
    /// machine starting with /, ./ or ../).
    target: std::ffi::OsString,
    /// Everything below, not only the direct entries.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Mode, size and time before each path.
    #[arg(short, long)]
    long: bool,
}

fn mode_string(kind: NodeKind, mode: u32) -> String {
    let t = match kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::Chardev => 'c',
        NodeKind::Blockdev => 'b',
        NodeKind::Socket => 's',
        NodeKind::File => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = global.progress();
    let repo = global.open_reader(&progress)?;
    let (selector, path) = parse_snap_path(&super::os_arg(&args.target))?;
    let (_, snapshot) = resolve(&repo, &selector, &Filter::default())?;
    let path = inside(&[&snapshot], path.as_deref())?;
    let node = find_node(&repo, snapshot.tree, &path)?;
    let prefix = snap::ops::browse::printable(&path);
    let mut rows = Vec::new();
    let mut visit = |p: &str, n: &snap::Node| -> snap::Result<()> {
        let mtime = jiff::Timestamp::from_nanosecond(i128::from(n.mtime_ns))
            .map(|t| t.to_string())
            .unwrap_or_default();
        if global.json {
            rows.push(serde_json::json!({
                "path": p,
                "name": n.display_name(),
                "name_hex": hex::encode(&n.name),
                "type": n.kind.as_str(),
                "size": n.size,
                "mode": n.mode,
                "mtime": mtime,
                "uid": n.uid,
                "gid": n.gid,
            }));
        } else if args.long {
            println!(
                "{} {:>12} {} {}",
                mode_string(n.kind, n.mode),
                n.size,
                output::local_time(&mtime),
                p
            );
        } else {
            println!("{p}");
        }
        Ok(())
    };
    walk(&repo, &node, &prefix, args.recursive, &mut visit)?;
    if global.json {
        output::print_json(&rows)?;
    }
    Ok(exit::OK)
}
