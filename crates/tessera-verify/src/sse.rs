//! A Server-Sent Events parser (the `text/event-stream` format of the HTML standard, §9.2.6),
//! fed with the bytes as they arrive. Only what the revocation feed uses: `event`, `data`, `id`;
//! comments and `retry` are skipped.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SseEvent {
    /// `event:` (empty: the default `message`).
    pub(crate) kind: String,
    /// The `data:` lines, joined with `\n`.
    pub(crate) data: String,
    /// `id:`, if the event had one.
    pub(crate) id: Option<String>,
}

/// The longest line accepted: a stream that never ends a line is not a feed.
const MAX_LINE: usize = 4 * 1024 * 1024;

/// Incremental parser state.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    event: SseEvent,
    has_data: bool,
    /// Whether the previous byte was `\r` (so a following `\n` ends nothing more).
    after_cr: bool,
}

/// The stream broke the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed event stream")]
pub(crate) struct Malformed;

impl SseParser {
    /// Feeds `bytes`; returns the events they completed.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, Malformed> {
        let mut out = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, &mut out)?;
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() >= MAX_LINE {
                        return Err(Malformed);
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(out)
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), Malformed> {
        if line.is_empty() {
            // A blank line dispatches the event, if it had data.
            let event = std::mem::take(&mut self.event);
            if std::mem::take(&mut self.has_data) {
                out.push(event);
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // a comment
        }
        let line = std::str::from_utf8(line).map_err(|_| Malformed)?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event.kind = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.event.id = Some(value.to_owned()),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        chunks
            .iter()
            .flat_map(|c| parser.feed(c).expect("well formed"))
            .collect()
    }

    #[test]
    fn events_split_anywhere_parse_alike() {
        let text = b"event: revocations\nid: 7\ndata: {\"a\":1}\n\n: comment\nevent: heartbeat\r\ndata: x\r\ndata: y\r\n\r\n";
        let whole = parse_all(&[text]);
        assert_eq!(
            whole,
            vec![
                SseEvent {
                    kind: "revocations".into(),
                    data: "{\"a\":1}".into(),
                    id: Some("7".into())
                },
                SseEvent {
                    kind: "heartbeat".into(),
                    data: "x\ny".into(),
                    id: None
                },
            ]
        );
        for split in 0..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(parse_all(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(parse_all(&bytes), whole);
    }

    #[test]
    fn an_event_without_data_or_not_ended_is_not_dispatched() {
        assert!(parse_all(&[b"event: x\n\n"]).is_empty());
        assert!(parse_all(&[b"event: x\ndata: 1\n"]).is_empty());
        assert_eq!(
            parse_all(&[b"data\n\n"]).len(),
            1,
            "a bare field name is an empty value"
        );
    }

    #[test]
    fn invalid_utf8_and_endless_lines_are_malformed() {
        let mut parser = SseParser::default();
        assert_eq!(parser.feed(b"data: \xff\n"), Err(Malformed));
        let mut parser = SseParser::default();
        let long = vec![b'a'; MAX_LINE + 1];
        assert_eq!(parser.feed(&long), Err(Malformed));
    }
}
