//! [`Text`]: a text of a trace record that many records share.
//!
//! A run keeps the records its checks and reports read: at a thousand servers, 1.1
//! million `event` and half a million `state` records, each naming its server and room,
//! and an event id or a state hash. As `String`s each was its own allocation, copied from
//! the world's names and the homeserver's ids per record. A [`Text`] shares one copy: the
//! world hands every record of a server that server's name, one copy of each room id and
//! state hash, and an event id the homeserver's own shared copy. The `send` records (one
//! per message) name their servers and request line the same way.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A shared, immutable text: compared, ordered, hashed and written as its characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(Arc<str>);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` is this very copy (not merely equal characters): a holder that keeps
    /// a `Text` can so recognise it again without reading it.
    pub fn is_same_copy(&self, other: &Text) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The address of this copy's characters: equal for two `Text`s exactly when they are
    /// one copy ([`Text::is_same_copy`]). A holder that keeps the copy alive can key a
    /// lookup by it, which neither reads nor hashes the characters; the address differs
    /// from run to run, so it may only find what a lookup by the characters would find.
    pub fn copy_address(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<u8>().addr()
    }

    /// The shared characters themselves, for a holder that is not a record (no copy).
    pub fn shared(&self) -> Arc<str> {
        Arc::clone(&self.0)
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Arc<str>> for Text {
    fn from(text: Arc<str>) -> Text {
        Text(text)
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text(text.into())
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        Text(text.into())
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        String::deserialize(deserializer).map(Text::from)
    }
}
