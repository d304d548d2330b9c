//! Netfilter's netlink, without unsafe code: a `NETLINK_NETFILTER` socket (rustix) that sends
//! one nf_tables batch and reads its acknowledgements, or runs one dump; and a reader of
//! netlink messages and attributes for what comes back. nftnl builds the batches
//! ([`super::nftnl`]); this is only the transport and a reader, a few dozen lines, because
//! the attribute format is four bytes of header and a value.

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, bind, netlink, recv, send,
    socket_with, sockopt,
};

/// nf_tables' netfilter subsystem; a message's type is `SUBSYS << 8 | NFT_MSG_*`.
const SUBSYS_NFTABLES: u16 = 10;

/// `NFT_MSG_*`: the nf_tables message types netc sends or reads.
pub mod kind {
    pub const NEWTABLE: u16 = 0;
    pub const GETTABLE: u16 = 1;
    pub const NEWCHAIN: u16 = 3;
    pub const GETCHAIN: u16 = 4;
    pub const NEWRULE: u16 = 6;
    pub const GETRULE: u16 = 7;
    pub const NEWSET: u16 = 9;
    pub const GETSET: u16 = 10;
    pub const NEWSETELEM: u16 = 12;
    pub const GETSETELEM: u16 = 13;
    pub const NEWGEN: u16 = 15;
    pub const GETGEN: u16 = 16;
}

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 1;
pub const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;
/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`: flags in an attribute's type.
const NLA_TYPE_MASK: u16 = 0x3fff;
pub const NLA_F_NESTED: u16 = 0x8000;
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
const HEADER: usize = 16;
/// `struct nfgenmsg`: family, version, resource id.
const NFGEN: usize = 4;

/// One netlink message: an nf_tables one has its family and a body of attributes.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// For nf_tables messages, the `NFT_MSG_*` part; else the netlink type.
    pub kind: u16,
    pub nftables: bool,
    pub flags: u16,
    pub seq: u32,
    pub family: u8,
    /// The attributes, after the netlink and nfgenmsg headers.
    pub body: &'a [u8],
    /// The whole message, headers included.
    pub raw: &'a [u8],
}

/// The messages in `buf`, in order; a truncated tail is ignored.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Message<'_>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < HEADER {
            return None;
        }
        let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        if len < HEADER || len > rest.len() {
            return None;
        }
        let (raw, tail) = rest.split_at(len);
        rest = tail.get(align(len) - len..).unwrap_or(&[]);
        let ty = u16::from_ne_bytes([raw[4], raw[5]]);
        let nftables = ty >> 8 == SUBSYS_NFTABLES;
        Some(Message {
            kind: if nftables { ty & 0xff } else { ty },
            nftables,
            flags: u16::from_ne_bytes([raw[6], raw[7]]),
            seq: u32::from_ne_bytes(raw[8..12].try_into().expect("4 bytes")),
            family: raw.get(HEADER).copied().unwrap_or(0),
            body: raw.get(HEADER + NFGEN..).unwrap_or(&[]),
            raw,
        })
    })
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// The attributes in `buf` as (type without flags, value); a malformed tail ends the list.
pub fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        if len < 4 || len > rest.len() {
            return None;
        }
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & NLA_TYPE_MASK;
        let value = &rest[4..len];
        rest = rest.get(align(len)..).unwrap_or(&[]);
        Some((kind, value))
    })
}

/// The value of the first attribute of type `kind`.
pub fn attr(buf: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(buf).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// The first attribute of type `kind` as text (a NUL at its end dropped).
pub fn attr_text(buf: &[u8], kind: u16) -> Option<String> {
    let v = attr(buf, kind)?;
    Some(String::from_utf8_lossy(v.strip_suffix(&[0]).unwrap_or(v)).into_owned())
}

/// The first attribute of type `kind` as a big-endian `u32` (nf_tables' numbers).
pub fn attr_be32(buf: &[u8], kind: u16) -> Option<u32> {
    attr(buf, kind)?.try_into().ok().map(u32::from_be_bytes)
}

/// Whether `buf` is exactly a list of well-formed attributes (a nest).
pub fn is_nest(buf: &[u8]) -> bool {
    let mut used = 0;
    for (_, value) in attrs(buf) {
        used += align(4 + value.len());
    }
    !buf.is_empty() && used >= buf.len() && used - buf.len() < 4
}

/// Appends one attribute to a message under construction.
pub fn push_attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(align(out.len()), 0);
}

/// Sets the length field of the message that starts at `start` to end at `out`'s end.
pub fn seal(out: &mut [u8], start: usize) {
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// A netfilter netlink socket.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    pub fn open() -> io::Result<Socket> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(netlink::NETFILTER),
        )?;
        bind(&fd, &netlink::SocketAddrNetlink::new(0, 0))?;
        Ok(Socket { fd, seq: 0 })
    }

    /// Sends a whole batch (begin … end) in one datagram and waits for the kernel's answer
    /// to every message that asked for one. The kernel runs the batch as one transaction
    /// while sending, so every answer is queued when `send` returns; the first error, with
    /// the number of the message it answers, fails the call.
    pub fn send_batch(&mut self, batch: &[u8]) -> io::Result<()> {
        let expected = messages(batch).filter(|m| m.flags & NLM_F_ACK != 0).count();
        self.send_then_read(batch, expected, |m| match is_ack(m) {
            true => ack(m, batch),
            false => Ok(()),
        })
    }

    /// Sends `datagram` in one piece and hands every answer to `each` until `expected`
    /// acknowledgements (or errors) have come. The kernel handles what it is sent while
    /// sending, so every answer is queued when `send` returns: none may be waited for.
    fn send_then_read(
        &mut self,
        datagram: &[u8],
        mut expected: usize,
        mut each: impl FnMut(&Message) -> io::Result<()>,
    ) -> io::Result<()> {
        // The datagram must fit the socket's buffer in one piece (root may force a size).
        let room = datagram.len() + 64 * 1024;
        sockopt::set_socket_send_buffer_size_force(&self.fd, room)
            .or_else(|_| sockopt::set_socket_send_buffer_size(&self.fd, room))?;
        sockopt::set_socket_recv_buffer_size_force(&self.fd, 4 << 20).ok();
        send(&self.fd, datagram, SendFlags::empty())?;
        let mut buf = vec![0u8; 256 * 1024];
        while expected > 0 {
            let n = match recv(&self.fd, &mut buf[..], RecvFlags::DONTWAIT) {
                Ok((n, _)) => n,
                Err(rustix::io::Errno::AGAIN) => {
                    return Err(io::Error::other(format!(
                        "the kernel left {expected} messages unanswered"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            for m in messages(&buf[..n]) {
                each(&m)?;
                expected = expected.saturating_sub(usize::from(is_ack(&m)));
            }
        }
        Ok(())
    }

    /// Runs one dump request (`NFT_MSG_GET*` with `NLM_F_DUMP`) and returns every answer
    /// message's bytes. A dump the kernel marks as interrupted (the table changed while it
    /// was read) is read again.
    pub fn dump(&mut self, kind: u16, family: u8, filter: &[(u16, &[u8])]) -> io::Result<Vec<u8>> {
        for _ in 0..5 {
            let (out, interrupted) = self.dump_once(kind, family, filter)?;
            if !interrupted {
                return Ok(out);
            }
        }
        Err(io::Error::other(
            "the nftables ruleset kept changing while netc read it",
        ))
    }

    fn dump_once(
        &mut self,
        kind: u16,
        family: u8,
        filter: &[(u16, &[u8])],
    ) -> io::Result<(Vec<u8>, bool)> {
        self.seq += 1;
        let request = request(kind, NLM_F_REQUEST | NLM_F_DUMP, family, self.seq, filter);
        send(&self.fd, &request, SendFlags::empty())?;
        let mut out = Vec::new();
        let mut interrupted = false;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let (n, _) = recv(&self.fd, &mut buf[..], RecvFlags::empty())?;
            for m in messages(&buf[..n]) {
                if m.seq != self.seq {
                    continue;
                }
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                match (m.nftables, m.kind) {
                    (false, NLMSG_DONE) => return Ok((out, interrupted)),
                    (false, NLMSG_ERROR) => {
                        ack(&m, &request)?;
                        return Ok((out, interrupted));
                    }
                    _ => out.extend_from_slice(m.raw),
                }
            }
        }
    }

    /// Sends independent requests (each with `NLM_F_ACK`) in one datagram and returns every
    /// answer: the error code of each request by its sequence number (0: done), and the
    /// messages that answered with data. The kernel handles requests outside a batch one by
    /// one while sending, so every answer is queued when `send` returns.
    pub fn exchange(&mut self, requests: &[u8]) -> io::Result<Answers> {
        let mut answers = Answers::default();
        self.send_then_read(requests, messages(requests).count(), |m| {
            match is_ack(m) {
                true => answers.codes.push((m.seq, error_code(m))),
                false => answers.data.extend_from_slice(m.raw),
            }
            Ok(())
        })?;
        Ok(answers)
    }

    /// A fresh sequence number for a request.
    pub fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    /// The ruleset's generation: it changes with every committed transaction.
    pub fn generation(&mut self) -> io::Result<u32> {
        let seq = self.next_seq();
        let request = request(kind::GETGEN, NLM_F_REQUEST | NLM_F_ACK, 0, seq, &[]);
        let answers = self.exchange(&request)?;
        if let Some(&(_, code)) = answers.codes.iter().find(|(_, c)| *c != 0) {
            let error = io::Error::from_raw_os_error(-code);
            return Err(io::Error::new(
                error.kind(),
                format!("the kernel refused to tell the ruleset's generation: {error}"),
            ));
        }
        // NFTA_GEN_ID
        messages(&answers.data)
            .find_map(|m| attr_be32(m.body, 1))
            .ok_or_else(|| io::Error::other("no generation id in the kernel's answer"))
    }
}

/// One nf_tables request message.
fn request(kind: u16, flags: u16, family: u8, seq: u32, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    open_message(&mut out, SUBSYS_NFTABLES, kind, flags, family, seq);
    for (k, v) in attrs {
        push_attr(&mut out, *k, v);
    }
    seal(&mut out, 0);
    out
}

/// Appends the headers of a netfilter message of `subsystem` (its attributes follow; then
/// [`seal`] it at the returned start).
pub fn open_message(
    out: &mut Vec<u8>,
    subsystem: u16,
    kind: u16,
    flags: u16,
    family: u8,
    seq: u32,
) -> usize {
    let start = out.len();
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&(subsystem << 8 | kind).to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0, 0, 0]);
    start
}

/// Opens a nested attribute; [`close_nest`] sets its length once its members are in.
pub fn open_nest(out: &mut Vec<u8>, kind: u16) -> usize {
    let start = out.len();
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    start
}

pub fn close_nest(out: &mut [u8], start: usize) {
    let len = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}

/// An `NLMSG_ERROR` answer: Ok for an acknowledgement, else the error, naming the message
/// of `sent` it answers.
fn ack(m: &Message, sent: &[u8]) -> io::Result<()> {
    let code = error_code(m);
    if code == 0 {
        return Ok(());
    }
    let what = messages(sent)
        .find(|s| s.seq == m.seq)
        .map(describe)
        .unwrap_or_else(|| format!("message {}", m.seq));
    let error = io::Error::from_raw_os_error(-code);
    Err(io::Error::new(
        error.kind(),
        format!("the kernel refused {what}: {error}"),
    ))
}

/// Whether a message is an acknowledgement or an error (`NLMSG_ERROR`).
fn is_ack(m: &Message) -> bool {
    m.kind == NLMSG_ERROR && !m.nftables
}

/// An `NLMSG_ERROR`'s code: 0 acknowledges, else a negative error number.
fn error_code(m: &Message) -> i32 {
    m.raw
        .get(HEADER..HEADER + 4)
        .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
        .unwrap_or(0)
}

/// What came back for [`Socket::exchange`]'s requests.
#[derive(Debug, Default)]
pub struct Answers {
    /// (sequence number, 0 or a negative error number), in the order they came.
    pub codes: Vec<(u32, i32)>,
    /// The answers that carry data, as raw messages ([`messages`] reads them).
    pub data: Vec<u8>,
}

/// What a message of a batch does, for an error.
fn describe(m: Message) -> String {
    let name = |k| attr_text(m.body, k).unwrap_or_default();
    match m.kind {
        kind::NEWTABLE => "the table".to_string(),
        kind::NEWCHAIN => format!("chain {}", name(3)),
        kind::NEWRULE => format!("a rule of chain {}", name(2)),
        kind::NEWSET => format!("set {}", name(2)),
        kind::NEWSETELEM => format!("elements of set {}", name(2)),
        k => format!("an nf_tables message (type {k})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_as_written() {
        let r = request(
            kind::GETSET,
            NLM_F_REQUEST | NLM_F_DUMP,
            1,
            7,
            &[(1, b"netc\0")],
        );
        let m: Vec<Message> = messages(&r).collect();
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].kind, m[0].nftables, m[0].seq, m[0].family),
            (kind::GETSET, true, 7, 1)
        );
        assert_eq!(
            attrs(m[0].body).collect::<Vec<_>>(),
            vec![(1, &b"netc\0"[..])]
        );
        assert!(is_nest(m[0].body));
        assert!(!is_nest(&[1, 2, 3, 4, 5]));
    }
}
