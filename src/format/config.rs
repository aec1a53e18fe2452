//! The repository config: plain (never a secret), written at `init` and
//! rewritten only to turn a feature on.
//!
//! Layout: envelope magic `SNAPCONF`, version byte, MessagePack body. The
//! version is 1 while no required feature is on, so every build reads such a
//! config, and 2 once one is: builds from before features refuse it by its
//! version, later builds by the feature they do not know.

use serde::{Deserialize, Serialize};

use super::parity::ParityLevel;
use crate::codec::ChunkerParams;
use crate::error::{Error, ErrorKind, Result};
use crate::id::RepoId;

/// Magic of the config file.
pub const MAGIC: &[u8; 8] = b"SNAPCONF";

/// The config version of a repository without a required feature.
pub const VERSION_PLAIN: u8 = 1;

/// The config version of a repository with a required feature on (the
/// highest config version this build reads).
pub const VERSION_FEATURES: u8 = 2;

/// A feature this build knows: something a repository may use that some
/// builds cannot read (required) or may ignore (optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// SQLite image chunks compressed with a zstd dictionary (FORMAT.md,
    /// "Dictionary-compressed blobs"): builds without dictionaries would read
    /// them as damage, so it is required.
    SqliteDictionary,
    /// Records of restore drills under `drills/` (FORMAT.md, "Drill
    /// records"): builds without them never look there, so it is optional.
    DrillRecords,
    /// Reed-Solomon parity over groups of packs under `parity/`, at the
    /// config's `parity` level (FORMAT.md, "Parity"): builds without it
    /// would delete packs without re-forming their groups, so it is required.
    Parity,
    /// Every tree and chunk list stored in two different packs
    /// (FORMAT.md, "Metadata twice"): builds without it keep one location
    /// per blob, so their prune would delete the second copies as unused
    /// and their backups would store new metadata once, silently dropping
    /// the redundancy `check` promises; so it is required.
    MetadataTwice,
}

/// Every feature this build knows, for lookups by name.
const KNOWN: [Feature; 4] = [
    Feature::SqliteDictionary,
    Feature::DrillRecords,
    Feature::Parity,
    Feature::MetadataTwice,
];

impl Feature {
    /// The feature's name in the config.
    pub fn name(self) -> &'static str {
        match self {
            Feature::SqliteDictionary => "sqlite-dictionary",
            Feature::DrillRecords => "drill-records",
            Feature::Parity => "parity",
            Feature::MetadataTwice => "metadata-twice",
        }
    }

    /// Whether a build that does not know the feature must refuse the repository.
    pub fn required(self) -> bool {
        match self {
            Feature::SqliteDictionary | Feature::Parity => true,
            Feature::DrillRecords => false,
            Feature::MetadataTwice => true,
        }
    }

    /// The feature of this name, if this build knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        KNOWN.into_iter().find(|f| f.name() == name)
    }

    /// The config entry that turns the feature on.
    pub fn entry(self) -> FeatureEntry {
        FeatureEntry {
            name: self.name().to_owned(),
            required: self.required(),
        }
    }
}

/// One entry of the config's feature list, as stored: entries of features
/// this build does not know are kept as they are when the config is rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureEntry {
    /// The feature's name (`sqlite-dictionary`).
    pub name: String,
    /// Whether builds that do not know the feature must refuse the repository.
    pub required: bool,
}

/// How the repository's objects are sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// Objects are stored compressed but not encrypted.
    None,
    /// Objects are age files; keys live in `keys/`.
    Age,
}

/// The repository config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Repository id, random at init.
    pub id: RepoId,
    /// Chunker parameters for regular files.
    pub chunker: ChunkerParams,
    /// zstd level for blobs.
    pub compression: i32,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// Encryption mode.
    pub encryption: Encryption,
    /// Fixed chunk size for SQLite database images (rounded up to whole pages).
    #[serde(default = "default_sqlite_chunk")]
    pub sqlite_chunk: u32,
    /// Features the repository uses; absent (empty) in configs of
    /// repositories that use none, so those stay byte-for-byte as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<FeatureEntry>,
    /// Parity for new packs (with the `parity` feature); absent when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity: Option<ParityLevel>,
}

/// Default SQLite chunk size; see docs/SQLITE.md for the measurements.
pub const SQLITE_CHUNK: u32 = 4 * 1024;

/// What a config without the field means: the size snap used before the
/// field existed, so old repositories keep deduplicating against themselves.
fn default_sqlite_chunk() -> u32 {
    8 * 1024
}

impl Config {
    /// Serializes into the config file's bytes: version 1 unless a
    /// required feature is on.
    pub fn to_bytes(&self) -> Vec<u8> {
        super::envelope_version(MAGIC, self.version(), &super::to_msgpack(self))
    }

    /// The config version this config is written with.
    pub fn version(&self) -> u8 {
        if self.features.iter().any(|f| f.required) {
            VERSION_FEATURES
        } else {
            VERSION_PLAIN
        }
    }

    /// Whether `feature` is on.
    pub fn has_feature(&self, feature: Feature) -> bool {
        self.features.iter().any(|f| f.name == feature.name())
    }

    /// The features this build knows that are on.
    pub fn known_features(&self) -> Vec<Feature> {
        self.features
            .iter()
            .filter_map(|f| Feature::from_name(&f.name))
            .collect()
    }

    /// This config with `feature` on (unchanged if it already was).
    #[must_use]
    pub fn with_feature(mut self, feature: Feature) -> Self {
        if !self.has_feature(feature) {
            self.features.push(feature.entry());
        }
        self
    }

    /// Parses and validates a config file of either version, refusing a
    /// required feature this build does not know.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let body = super::open_envelope_upto(MAGIC, "repository config", VERSION_FEATURES, bytes)?;
        let config: Config = super::from_msgpack("repository config", body)?;
        config.check_features()?;
        if !config.chunker.is_valid() {
            return Err(Error::corrupt(
                "repository config",
                "chunker parameters out of range",
            ));
        }
        if !(1..=22).contains(&config.compression) {
            return Err(Error::corrupt(
                "repository config",
                "compression level out of range 1..=22",
            ));
        }
        if !(4096..=1 << 24).contains(&config.sqlite_chunk) {
            return Err(Error::corrupt(
                "repository config",
                "SQLite chunk size out of range 4 KiB..=16 MiB",
            ));
        }
        if !(1 << 20..=1 << 30).contains(&config.pack_size) {
            return Err(Error::corrupt(
                "repository config",
                "pack size out of range 1 MiB..=1 GiB",
            ));
        }
        if let Some(level) = config.parity
            && (level.data == 0
                || level.parity == 0
                || level.parity > super::parity::MAX_PARITY
                || usize::from(level.data) * 2 > super::parity::MAX_MEMBERS + 1)
        {
            return Err(Error::corrupt(
                "repository config",
                format!("parity level {}+{} out of range", level.data, level.parity),
            ));
        }
        Ok(config)
    }

    /// An unknown required feature refuses the repository; an unknown
    /// optional one is ignored.
    fn check_features(&self) -> Result<()> {
        match self
            .features
            .iter()
            .find(|f| f.required && Feature::from_name(&f.name).is_none())
        {
            Some(unknown) => Err(Error::new(
                ErrorKind::UnsupportedFeature,
                format!("this repository uses {}; upgrade snap", unknown.name),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let config = sample();
        let bytes = config.to_bytes();
        assert_eq!(Config::from_bytes(&bytes).unwrap(), config);
        let mut newer = bytes.clone();
        newer[8] = 3;
        let err = Config::from_bytes(&newer).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::UnsupportedVersion);
        assert!(Config::from_bytes(b"garbage").is_err());
    }

    fn sample() -> Config {
        Config {
            id: RepoId([3; 32]),
            chunker: ChunkerParams::FILES,
            compression: 3,
            pack_size: 16 << 20,
            encryption: Encryption::None,
            sqlite_chunk: SQLITE_CHUNK,
            features: Vec::new(),
            parity: None,
        }
    }

    /// The config with `features` as stored, written with `version`.
    fn with_entries(features: &[(&str, bool)], version: u8) -> Vec<u8> {
        let config = Config {
            features: features
                .iter()
                .map(|&(name, required)| FeatureEntry {
                    name: name.to_owned(),
                    required,
                })
                .collect(),
            ..sample()
        };
        crate::format::envelope_version(MAGIC, version, &crate::format::to_msgpack(&config))
    }

    #[test]
    fn a_config_without_features_is_version_1_and_has_no_feature_field() {
        let bytes = sample().to_bytes();
        assert_eq!(bytes[8], VERSION_PLAIN);
        let body = &bytes[crate::format::ENVELOPE_LEN..];
        assert!(!body.windows(8).any(|w| w == b"features"));
    }

    #[test]
    fn a_required_feature_makes_version_2_and_reads_back() {
        let config = sample().with_feature(Feature::SqliteDictionary);
        assert_eq!(
            config.clone().with_feature(Feature::SqliteDictionary),
            config
        );
        let bytes = config.to_bytes();
        assert_eq!(bytes[8], VERSION_FEATURES);
        let read = Config::from_bytes(&bytes).unwrap();
        assert!(read.has_feature(Feature::SqliteDictionary));
        assert_eq!(read.known_features(), [Feature::SqliteDictionary]);
        assert_eq!(read, config);
    }

    #[test]
    fn an_unknown_required_feature_refuses_the_repository() {
        for version in [VERSION_PLAIN, VERSION_FEATURES] {
            let bytes = with_entries(
                &[("sqlite-dictionary", true), ("time-travel", true)],
                version,
            );
            let err = Config::from_bytes(&bytes).unwrap_err();
            assert_eq!(err.kind(), crate::error::ErrorKind::UnsupportedFeature);
            assert_eq!(
                err.to_string(),
                "this repository uses time-travel; upgrade snap"
            );
        }
    }

    #[test]
    fn the_drill_records_feature_is_optional_and_keeps_version_1() {
        let config = sample().with_feature(Feature::DrillRecords);
        let bytes = config.to_bytes();
        assert_eq!(bytes[8], VERSION_PLAIN);
        let read = Config::from_bytes(&bytes).unwrap();
        assert_eq!(read.known_features(), [Feature::DrillRecords]);
        let both = read.with_feature(Feature::SqliteDictionary);
        assert_eq!(both.to_bytes()[8], VERSION_FEATURES);
    }

    #[test]
    fn an_unknown_optional_feature_is_ignored_and_kept() {
        let bytes = with_entries(&[("shiny-hints", false)], VERSION_PLAIN);
        let config = Config::from_bytes(&bytes).unwrap();
        assert!(config.known_features().is_empty());
        assert_eq!(config.version(), VERSION_PLAIN);
        // Turning a known feature on keeps the unknown entry.
        let updated = config.with_feature(Feature::SqliteDictionary);
        let names: Vec<&str> = updated.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["shiny-hints", "sqlite-dictionary"]);
        assert_eq!(updated.to_bytes()[8], VERSION_FEATURES);
    }
}
