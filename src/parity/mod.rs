//! Reed-Solomon parity over groups of packs: writing a group's parity
//! object, finding the groups, rebuilding a lost or damaged member.
//!
//! Parity is computed over the packs' stored bytes, so a pack is rebuilt
//! without any key, and a rebuilt pack is only ever used once its bytes
//! hash to its name. The layout is in `crate::format::parity` and
//! docs/FORMAT.md, "Parity"; the codes are those of `reed-solomon-simd`
//! (GF(2^16), Leopard-RS), one code per stripe.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

use crate::backend::{Backend, FileKind};
use crate::error::{Error, ErrorKind, Result};
use crate::format::parity::{
    MAGIC, MAX_HEADER_LEN, MAX_MEMBERS, Member, PREFIX_LEN, ParityHeader, STRIPE, shard_len_for,
};
use crate::format::{ENVELOPE_LEN, FORMAT_VERSION, from_msgpack, open_envelope, to_msgpack};
use crate::id::PackId;
use crate::plural;

/// A parity object's name and header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The object's name (hex blake3 of its bytes).
    pub name: String,
    /// What it protects.
    pub header: ParityHeader,
    /// Length of the MessagePack header.
    header_len: u32,
}

impl Group {
    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.header.shards_offset(self.header_len)
            + u64::from(self.header.parity) * self.header.shard_len
    }

    /// The group's member ids.
    pub fn member_ids(&self) -> impl Iterator<Item = PackId> + '_ {
        self.header.members.iter().map(|m| m.id)
    }

    fn shard_offset(&self, shard: usize, offset: u64) -> u64 {
        self.header.shards_offset(self.header_len) + shard as u64 * self.header.shard_len + offset
    }
}

/// Computes the parity of `members` (packs in the repository, read back
/// stripe by stripe) and stores it as a parity object with `parity` shards.
pub fn write_group(backend: &dyn Backend, members: &[Member], parity: u8) -> Result<Group> {
    if members.is_empty() || members.len() > MAX_MEMBERS {
        return Err(Error::usage(format!(
            "a parity group holds 1 to {MAX_MEMBERS} packs, not {}",
            members.len()
        )));
    }
    let largest = members.iter().map(|m| m.size).max().unwrap_or(0);
    let header = ParityHeader {
        members: members.to_vec(),
        shard_len: shard_len_for(largest),
        stripe: STRIPE,
        parity,
    };
    let body = to_msgpack(&header);
    let header_len =
        u32::try_from(body.len()).map_err(|_| Error::usage("parity header too long"))?;
    let group_shell = Group {
        name: String::new(),
        header,
        header_len,
    };
    let total =
        usize::try_from(group_shell.size()).map_err(|_| Error::usage("parity object too large"))?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&body);
    out.resize(total, 0);
    let header = &group_shell.header;
    // Members are verified as they are read: parity over a damaged pack
    // would rebuild the damage.
    let mut hashers: Vec<blake3::Hasher> = members.iter().map(|_| blake3::Hasher::new()).collect();
    for offset in stripes(header) {
        let width = stripe_width(header, offset);
        let originals: Vec<Vec<u8>> = members
            .par_iter()
            .map(|member| read_member_stripe(backend, member, offset, width))
            .collect::<Result<_>>()?;
        for ((hasher, member), stripe) in hashers.iter_mut().zip(members).zip(&originals) {
            hasher.update(&stripe[..member_len_in(member, offset, width)]);
        }
        let recovery = reed_solomon_simd::encode(members.len(), usize::from(parity), &originals)
            .map_err(|e| Error::usage(format!("cannot compute parity: {e}")))?;
        for (shard, bytes) in recovery.iter().enumerate() {
            let at = usize::try_from(group_shell.shard_offset(shard, offset)).expect("in memory");
            out[at..at + width].copy_from_slice(bytes);
        }
    }
    for (hasher, member) in hashers.iter().zip(members) {
        if hasher.finalize().as_bytes() != member.id.as_bytes() {
            return Err(Error::corrupt(
                format!("pack {}", member.id),
                "its bytes do not hash to its name",
            ));
        }
    }
    let name = hex::encode(blake3::hash(&out).as_bytes());
    backend.write(FileKind::Parity, &name, &out)?;
    Ok(Group {
        name,
        ..group_shell
    })
}

/// Offsets of a group's stripes.
fn stripes(header: &ParityHeader) -> impl Iterator<Item = u64> {
    (0..header.shard_len).step_by(header.stripe as usize)
}

fn stripe_width(header: &ParityHeader, offset: u64) -> usize {
    usize::try_from((header.shard_len - offset).min(u64::from(header.stripe))).expect("a stripe")
}

/// The bytes of a member that fall in the stripe at `offset`.
fn member_len_in(member: &Member, offset: u64, width: usize) -> usize {
    usize::try_from(member.size.saturating_sub(offset).min(width as u64)).expect("a stripe")
}

/// A member's stripe, padded with zeros to `width`.
fn read_member_stripe(
    backend: &dyn Backend,
    member: &Member,
    offset: u64,
    width: usize,
) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; width];
    let len = member_len_in(member, offset, width);
    if len > 0 {
        let bytes = backend.read_range(
            FileKind::Pack,
            &member.id.to_hex(),
            offset,
            u32::try_from(len).expect("a stripe"),
        )?;
        if bytes.len() != len {
            return Err(Error::corrupt(
                format!("pack {}", member.id),
                format!("shorter than its {} bytes", member.size),
            ));
        }
        buf[..len].copy_from_slice(&bytes);
    }
    Ok(buf)
}

/// Reads and validates the header of parity object `name`.
pub fn read_group(backend: &dyn Backend, name: &str) -> Result<Group> {
    let what = format!("parity object {name}");
    let prefix = backend.read_range(FileKind::Parity, name, 0, PREFIX_LEN)?;
    open_envelope(MAGIC, &what, &prefix)?;
    let header_len = u32::from_le_bytes(prefix[ENVELOPE_LEN..].try_into().expect("4 bytes"));
    if header_len > MAX_HEADER_LEN {
        return Err(Error::corrupt(
            &what,
            format!("header length {header_len} is too long"),
        ));
    }
    let body = backend.read_range(FileKind::Parity, name, u64::from(PREFIX_LEN), header_len)?;
    let header: ParityHeader = from_msgpack(&what, &body)?;
    header.validate().map_err(|e| Error::corrupt(&what, e))?;
    Ok(Group {
        name: name.to_owned(),
        header,
        header_len,
    })
}

/// Readable groups, and the names of parity objects whose header cannot
/// be read with why.
pub type Groups = (Vec<Group>, Vec<(String, Error)>);

/// The groups that hold each pack.
pub type GroupsByMember = std::sync::Arc<std::collections::HashMap<PackId, Vec<Group>>>;

/// Every parity object's group; objects whose header cannot be read are
/// listed apart with their errors.
pub fn groups(backend: &dyn Backend) -> Result<Groups> {
    let names: Vec<String> = backend
        .list(FileKind::Parity)?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let read: Vec<(String, Result<Group>)> = names
        .into_par_iter()
        .map(|name| {
            let group = read_group(backend, &name);
            (name, group)
        })
        .collect();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (name, group) in read {
        match group {
            Ok(group) => good.push(group),
            // Removed since the listing (a prune re-forming groups).
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) if e.is_damage() => bad.push((name, e)),
            Err(e) => return Err(e),
        }
    }
    good.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((good, bad))
}

/// Verifies a whole parity object against its name.
pub fn verify(backend: &dyn Backend, group: &Group) -> Result<()> {
    let bytes = backend.read(FileKind::Parity, &group.name)?;
    if hex::encode(blake3::hash(&bytes).as_bytes()) != group.name
        || bytes.len() as u64 != group.size()
    {
        return Err(Error::corrupt(
            format!("parity object {}", group.name),
            "its content does not match its name",
        ));
    }
    Ok(())
}

/// Rebuilds member `target` of `group` from the other members and the
/// parity shards. Members that turn out missing or damaged on the way count
/// as lost too; more lost members than parity shards is damage naming them.
///
/// The other members are not hashed on the first pass: a damaged one makes
/// the rebuilt pack fail its hash, and only then is every member verified
/// to find which (a second pass), so the common case reads each once.
pub fn rebuild(backend: &dyn Backend, group: &Group, target: &PackId) -> Result<Vec<u8>> {
    let header = &group.header;
    let index = header
        .members
        .iter()
        .position(|m| m.id == *target)
        .ok_or_else(|| {
            Error::usage(format!(
                "pack {target} is not in parity group {}",
                group.name
            ))
        })?;
    let mut lost = BTreeSet::from([index]);
    let mut verified = false;
    loop {
        if lost.len() > usize::from(header.parity) {
            return Err(too_many_lost(group, target, &lost));
        }
        match rebuild_pass(backend, group, &lost)? {
            Pass::AlsoLost(i) => {
                lost.insert(i);
            }
            Pass::Rebuilt(mut rebuilt) => {
                let bytes = rebuilt.remove(&index).expect("the target was rebuilt");
                if blake3::hash(&bytes).as_bytes() == target.as_bytes() {
                    return Ok(bytes);
                }
                let damaged = if verified {
                    Vec::new()
                } else {
                    damaged_members(backend, header, &lost)?
                };
                verified = true;
                if damaged.is_empty() {
                    return Err(Error::corrupt(
                        format!("parity object {}", group.name),
                        format!("it does not rebuild pack {target}: the parity object is damaged"),
                    ));
                }
                lost.extend(damaged);
            }
        }
    }
}

fn too_many_lost(group: &Group, target: &PackId, lost: &BTreeSet<usize>) -> Error {
    let header = &group.header;
    let names: Vec<String> = lost
        .iter()
        .map(|&i| header.members[i].id.to_hex())
        .collect();
    Error::corrupt(
        format!("pack {target}"),
        format!(
            "it cannot be rebuilt: its parity group {} lost {} ({}) and has {}",
            short(&group.name),
            plural::count(lost.len(), "pack", "packs"),
            names.join(", "),
            plural::count(usize::from(header.parity), "parity shard", "parity shards"),
        ),
    )
}

/// Members not in `lost` that are missing or whose bytes do not hash to
/// their name.
fn damaged_members(
    backend: &dyn Backend,
    header: &ParityHeader,
    lost: &BTreeSet<usize>,
) -> Result<Vec<usize>> {
    // Sequential, for the reason `rebuild_pass` gives (this is the rare path).
    let checked: Vec<(usize, Result<bool>)> = (0..header.members.len())
        .filter(|i| !lost.contains(i))
        .map(|i| {
            let member = &header.members[i];
            let sound = match backend.read(FileKind::Pack, &member.id.to_hex()) {
                Ok(bytes) => Ok(blake3::hash(&bytes).as_bytes() == member.id.as_bytes()),
                Err(e) if e.is_damage() => Ok(false),
                Err(e) => Err(e),
            };
            (i, sound)
        })
        .collect();
    let mut damaged = Vec::new();
    for (i, sound) in checked {
        if !sound? {
            damaged.push(i);
        }
    }
    Ok(damaged)
}

fn short(name: &str) -> &str {
    &name[..name.len().min(16)]
}

enum Pass {
    /// The lost members' bytes, by member index.
    Rebuilt(BTreeMap<usize, Vec<u8>>),
    /// Another member turned out missing or too short.
    AlsoLost(usize),
}

/// The restored slices of the lost members in one stripe, or the first
/// member found missing.
enum StripeOut {
    Restored(BTreeMap<usize, Vec<u8>>),
    AlsoLost(usize),
}

/// One pass over the stripes (in parallel), rebuilding the `lost` members.
fn rebuild_pass(backend: &dyn Backend, group: &Group, lost: &BTreeSet<usize>) -> Result<Pass> {
    let header = &group.header;
    let members = &header.members;
    let present: Vec<usize> = (0..members.len()).filter(|i| !lost.contains(i)).collect();
    let offsets: Vec<u64> = stripes(header).collect();
    let stripe = |offset: u64| -> Result<StripeOut> {
        let width = stripe_width(header, offset);
        let mut originals = Vec::with_capacity(present.len());
        for &i in &present {
            match read_member_stripe(backend, &members[i], offset, width) {
                Ok(stripe) => originals.push((i, stripe)),
                Err(e) if e.is_damage() => return Ok(StripeOut::AlsoLost(i)),
                Err(e) => return Err(e),
            }
        }
        let recovery: Vec<(usize, Vec<u8>)> = (0..lost.len())
            .map(|shard| {
                backend
                    .read_range(
                        FileKind::Parity,
                        &group.name,
                        group.shard_offset(shard, offset),
                        u32::try_from(width).expect("a stripe"),
                    )
                    .map(|bytes| (shard, bytes))
            })
            .collect::<Result<_>>()?;
        let restored = reed_solomon_simd::decode(
            members.len(),
            usize::from(header.parity),
            originals,
            recovery,
        )
        .map_err(|e| {
            Error::corrupt(
                format!("parity object {}", group.name),
                format!("its shards do not decode: {e}"),
            )
        })?;
        Ok(StripeOut::Restored(
            restored
                .into_iter()
                .filter(|(i, _)| lost.contains(i))
                .map(|(i, mut shard)| {
                    shard.truncate(member_len_in(&members[i], offset, width));
                    (i, shard)
                })
                .collect(),
        ))
    };
    // Plain threads, not the rayon pool: a reader may rebuild while holding
    // the repository's rebuild lock, and a rayon worker waiting for its
    // jobs could steal a job that wants the same lock.
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, offsets.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, Result<StripeOut>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&offset) = offsets.get(k) else {
                            return out;
                        };
                        out.push((k, stripe(offset)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a stripe worker does not panic"))
            .collect()
    });
    done.sort_by_key(|(k, _)| *k);
    let stripes: Vec<StripeOut> = done
        .into_iter()
        .map(|(_, out)| out)
        .collect::<Result<_>>()?;
    let mut rebuilt: BTreeMap<usize, Vec<u8>> = lost
        .iter()
        .map(|&i| {
            (
                i,
                Vec::with_capacity(usize::try_from(members[i].size).unwrap_or(0)),
            )
        })
        .collect();
    for stripe in stripes {
        match stripe {
            StripeOut::AlsoLost(i) => return Ok(Pass::AlsoLost(i)),
            StripeOut::Restored(slices) => {
                for (i, slice) in slices {
                    rebuilt
                        .get_mut(&i)
                        .expect("a lost member")
                        .extend_from_slice(&slice);
                }
            }
        }
    }
    Ok(Pass::Rebuilt(rebuilt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LocalBackend;

    fn store_pack(backend: &dyn Backend, bytes: &[u8]) -> Member {
        let id = PackId(*blake3::hash(bytes).as_bytes());
        backend.write(FileKind::Pack, &id.to_hex(), bytes).unwrap();
        Member {
            id,
            size: bytes.len() as u64,
        }
    }

    fn pack_bytes(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    }

    #[test]
    fn a_lost_member_is_rebuilt_and_two_lost_with_one_shard_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path());
        backend.create().unwrap();
        // Sizes that cross stripes and are not multiples of 64.
        let sizes = [STRIPE as usize * 2 + 77, 1000, 3, STRIPE as usize + 1];
        let members: Vec<Member> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| store_pack(&backend, &pack_bytes(i as u8, len)))
            .collect();
        let group = write_group(&backend, &members, 1).unwrap();
        assert_eq!(read_group(&backend, &group.name).unwrap(), group);
        verify(&backend, &group).unwrap();
        for (i, member) in members.iter().enumerate() {
            let name = member.id.to_hex();
            backend.remove(FileKind::Pack, &name).unwrap();
            let bytes = rebuild(&backend, &group, &member.id).unwrap();
            assert_eq!(bytes, pack_bytes(i as u8, sizes[i]));
            backend.write(FileKind::Pack, &name, &bytes).unwrap();
        }
        // A flipped byte in another member makes it lost too: two lost.
        // (A new backend: the old one keeps the packs it read open.)
        let backend = LocalBackend::new(dir.path());
        let mut damaged = pack_bytes(1, sizes[1]);
        damaged[10] ^= 1;
        backend
            .write(FileKind::Pack, &members[1].id.to_hex(), &damaged)
            .unwrap();
        backend
            .remove(FileKind::Pack, &members[0].id.to_hex())
            .unwrap();
        let Err(e) = rebuild(&backend, &group, &members[0].id) else {
            panic!("two lost packs with one parity shard were rebuilt");
        };
        assert!(e.is_damage());
        assert!(e.message().contains(&members[1].id.to_hex()), "{e}");
        assert!(e.message().contains("lost 2 packs"), "{e}");
    }
}
