//! A Kafka record as plain bytes: what the generator makes and the producer sends, independent of the
//! Kafka client.

/// One record to produce. Header values are never null in generated traffic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The key (the team id for core events).
    pub key: Option<Vec<u8>>,
    /// The value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Appends a text header.
    pub fn push_header(&mut self, name: &str, value: &str) {
        self.headers.push((name.to_owned(), value.as_bytes().to_vec()));
    }

    /// Replaces the value of every header named `name`, or appends it.
    pub fn set_header(&mut self, name: &str, value: &str) {
        let mut found = false;
        for (n, v) in &mut self.headers {
            if n == name {
                *v = value.as_bytes().to_vec();
                found = true;
            }
        }
        if !found {
            self.push_header(name, value);
        }
    }

    /// Removes every header named `name`.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| n != name);
    }
}
