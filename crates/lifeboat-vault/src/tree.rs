//! Trees: the structure of a recovery point, stored as tree blobs (JSON).
//!
//! A tree is a sorted list of nodes; a directory node names its subtree, a
//! file node lists the data blobs of its content in order. The engine walks
//! trees for check, prune and copy; what the metadata means is the protector's.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::id::Id;

/// Kind of node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A regular file (or a stream: a table dump, an object).
    #[default]
    File,
    /// A directory; `subtree` holds its entries.
    Dir,
    /// A symbolic link; `target` holds where it points.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    Chardev,
    /// A block device.
    Blockdev,
    /// A Unix socket (recorded, never recreated).
    Socket,
}

/// An extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Attribute name.
    pub name: String,
    /// Attribute value, base64.
    pub value: String,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Node {
    /// Name; when the raw name is not UTF-8, this is its base64 and `name_b64` is set.
    pub name: String,
    /// Whether `name` is base64 of raw bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub name_b64: bool,
    /// Kind of node.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Unix mode bits (permission and type).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mode: u32,
    /// Owner.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: u32,
    /// Group.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: u32,
    /// Logical size in bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Modification time, ns since the epoch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtime_ns: i64,
    /// Access time, ns since the epoch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub atime_ns: i64,
    /// Change time, ns since the epoch (for change detection; not restorable).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ctime_ns: i64,
    /// Inode number (for change detection and hard links).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    /// Device number of the filesystem holding it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dev: u64,
    /// Hard link count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub links: u64,
    /// Device number for device nodes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// Content blobs, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// For sparse files: the data extents `(offset, length)`; content covers them
    /// concatenated, everything else is a hole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extents: Option<Vec<(u64, u64)>>,
    /// For directories: the tree of its entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// For symlinks: the target (base64 when `target_b64` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether `target` is base64 of raw bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub target_b64: bool,
    /// Extended attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    /// Protector-defined attributes (format version 2): e.g. an object's
    /// content type and user metadata. The engine never interprets them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Encodes raw bytes as (text, is_base64).
pub fn encode_bytes(raw: &[u8]) -> (String, bool) {
    match std::str::from_utf8(raw) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (b64().encode(raw), true),
    }
}

/// Decodes (text, is_base64) back to raw bytes.
pub fn decode_bytes(text: &str, is_b64: bool) -> Vec<u8> {
    if is_b64 {
        b64()
            .decode(text)
            .unwrap_or_else(|_| text.as_bytes().to_vec())
    } else {
        text.as_bytes().to_vec()
    }
}

impl Node {
    /// The raw name.
    pub fn name_bytes(&self) -> Vec<u8> {
        decode_bytes(&self.name, self.name_b64)
    }

    /// Sets the name from raw bytes.
    pub fn set_name_bytes(&mut self, raw: &[u8]) {
        (self.name, self.name_b64) = encode_bytes(raw);
    }

    /// The raw symlink target.
    pub fn target_bytes(&self) -> Option<Vec<u8>> {
        self.target
            .as_deref()
            .map(|t| decode_bytes(t, self.target_b64))
    }

    /// Sets the symlink target from raw bytes.
    pub fn set_target_bytes(&mut self, raw: &[u8]) {
        let (t, b) = encode_bytes(raw);
        self.target = Some(t);
        self.target_b64 = b;
    }
}

/// The entries of one directory (or one level of any structure), sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Tree {
    /// Entries, sorted by raw name.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Serializes to the stored form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("trees serialize")
    }

    /// Parses the stored form.
    pub fn from_bytes(b: &[u8]) -> Result<Tree, serde_json::Error> {
        serde_json::from_slice(b)
    }

    /// Finds a node by raw name.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name_bytes() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_roundtrip_and_are_absent_when_empty() {
        let mut n = Node {
            name: "a".into(),
            ..Node::default()
        };
        let plain = Tree {
            nodes: vec![n.clone()],
        }
        .to_bytes();
        assert!(
            !String::from_utf8_lossy(&plain).contains("attrs"),
            "v1 trees stay byte-identical"
        );
        n.attrs.insert("content-type".into(), "text/html".into());
        let t = Tree { nodes: vec![n] };
        let back = Tree::from_bytes(&t.to_bytes()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.nodes[0].attrs["content-type"], "text/html");
    }
}
