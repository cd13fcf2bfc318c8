//! Negotiating permessage-deflate (RFC 7692 §5, §7.1).

use std::fmt::Write as _;

use super::extensions::{self, Extension};
use super::DeflateConfig;
use crate::proto::connection::Role;

/// The extension's name.
pub const NAME: &str = "permessage-deflate";

/// Negotiated parameters from one endpoint's point of view: `local` is what this endpoint
/// compresses with, `remote` what its peer compresses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// We reset our compressor after every message.
    pub local_no_context_takeover: bool,
    /// The peer resets its compressor after every message, so we may reset our decompressor.
    pub remote_no_context_takeover: bool,
    /// Our compression window (8-15).
    pub local_max_window_bits: u8,
    /// The peer's compression window (8-15): our decompression window.
    pub remote_max_window_bits: u8,
}

/// What the negotiated parameters are called on the wire, per role.
fn wire(role: Role, n: &Negotiated) -> (bool, bool, u8, u8) {
    // (server_no_context_takeover, client_no_context_takeover, server bits, client bits)
    match role {
        Role::Server => (
            n.local_no_context_takeover,
            n.remote_no_context_takeover,
            n.local_max_window_bits,
            n.remote_max_window_bits,
        ),
        Role::Client => (
            n.remote_no_context_takeover,
            n.local_no_context_takeover,
            n.remote_max_window_bits,
            n.local_max_window_bits,
        ),
    }
}

#[derive(Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

fn bits(value: Option<&str>) -> Option<u8> {
    // RFC 7692 §7.1.2: 1*DIGIT in 8..15, no leading zeros.
    let value = value?;
    if value.starts_with('0') {
        return None;
    }
    value.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
}

/// Parses one permessage-deflate element; `None` for an unknown parameter, a duplicate, or a
/// value out of range (RFC 7692 §7.1: such an offer is declined, such a response fails).
fn params(ext: &Extension) -> Option<Params> {
    let mut p = Params::default();
    let mut seen = [false; 4];
    for (name, value) in &ext.params {
        let index = match name.as_str() {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return None,
        };
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
        match index {
            0 if value.is_none() => p.server_no_context_takeover = true,
            1 if value.is_none() => p.client_no_context_takeover = true,
            2 => p.server_max_window_bits = Some(bits(value.as_deref())?),
            3 => {
                p.client_max_window_bits = Some(match value {
                    None => None,
                    Some(_) => Some(bits(value.as_deref())?),
                })
            }
            _ => return None,
        }
    }
    Some(p)
}

/// The `Sec-WebSocket-Extensions` value for parameters negotiated by an endpoint of `role`
/// (what the server answers, in its canonical form).
pub fn extension_header(role: Role, n: &Negotiated) -> String {
    let (server_nct, client_nct, server_bits, client_bits) = wire(role, n);
    let mut out = String::from(NAME);
    if server_nct {
        out.push_str("; server_no_context_takeover");
    }
    if client_nct {
        out.push_str("; client_no_context_takeover");
    }
    if server_bits < 15 {
        let _ = write!(out, "; server_max_window_bits={server_bits}");
    }
    if client_bits < 15 {
        let _ = write!(out, "; client_max_window_bits={client_bits}");
    }
    out
}

/// Server side: walks the client's offers in order and accepts the first one it can honour
/// with `config`. Returns the response header value and the negotiated parameters, or `None`
/// when no offer is acceptable (the connection then goes on without compression).
///
/// # Errors
/// `Err(())` when the header is not a valid extension list; the seed library answers 400.
#[allow(clippy::result_unit_err)]
pub fn accept_offer<'a, I>(
    header_values: I,
    config: &DeflateConfig,
) -> Result<Option<(String, Negotiated)>, ()>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let offers = extensions::parse(header_values).map_err(|_| ())?;
    for offer in offers.iter().filter(|e| e.name == NAME) {
        let Some(p) = params(offer) else {
            continue;
        };
        // We can't limit the client's window if it doesn't support the parameter.
        if config.client_max_window_bits.is_some() && p.client_max_window_bits.is_none() {
            continue;
        }
        let server_bits = match (p.server_max_window_bits, config.server_max_window_bits) {
            (Some(asked), Some(ours)) => asked.min(ours),
            (Some(b), None) | (None, Some(b)) => b,
            (None, None) => 15,
        };
        let client_bits = match (p.client_max_window_bits, config.client_max_window_bits) {
            (Some(Some(offered)), Some(ours)) => offered.min(ours),
            (Some(None), Some(ours)) => ours,
            (Some(Some(offered)), None) => offered,
            _ => 15,
        };
        let negotiated = Negotiated {
            local_no_context_takeover: p.server_no_context_takeover
                || config.server_no_context_takeover,
            remote_no_context_takeover: p.client_no_context_takeover
                || config.client_no_context_takeover,
            local_max_window_bits: server_bits,
            remote_max_window_bits: client_bits,
        };
        let mut header = extension_header(Role::Server, &negotiated);
        if p.server_max_window_bits.is_some() && server_bits == 15 {
            // RFC 7692 §7.1.2.1: an accepted server_max_window_bits must be answered.
            header.push_str("; server_max_window_bits=15");
        }
        return Ok(Some((header, negotiated)));
    }
    Ok(None)
}

/// Client side: the offer to send.
pub fn offer_header(config: &DeflateConfig) -> String {
    let mut out = String::from(NAME);
    if config.server_no_context_takeover {
        out.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        out.push_str("; client_no_context_takeover");
    }
    if let Some(b) = config.server_max_window_bits {
        let _ = write!(out, "; server_max_window_bits={b}");
    }
    match config.client_max_window_bits {
        Some(b) => {
            let _ = write!(out, "; client_max_window_bits={b}");
        }
        None => out.push_str("; client_max_window_bits"),
    }
    out
}

/// Client side: checks the server's answer to [`offer_header`]. `Ok(None)` when the server
/// didn't accept the extension.
///
/// # Errors
/// The answer isn't a valid acceptance of what we offered (another extension, several
/// answers, an unknown parameter, a window larger than we allowed, a missing parameter we
/// required): RFC 7692 §5 says the client must fail the connection.
pub fn validate_answer<'a, I>(
    header_values: I,
    config: &DeflateConfig,
) -> Result<Option<Negotiated>, &'static str>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let answers = extensions::parse(header_values).map_err(|_| "malformed extension header")?;
    let answer = match answers.as_slice() {
        [] => return Ok(None),
        [one] if one.name == NAME => one,
        [_] => return Err("server accepted an extension we did not offer"),
        _ => return Err("server accepted several extensions"),
    };
    let p = params(answer).ok_or("invalid permessage-deflate parameters in the answer")?;
    if config.server_no_context_takeover && !p.server_no_context_takeover {
        return Err("server ignored server_no_context_takeover");
    }
    let server_bits = match (p.server_max_window_bits, config.server_max_window_bits) {
        (Some(b), Some(asked)) if b > asked => return Err("server window larger than asked"),
        (None, Some(_)) => return Err("server ignored server_max_window_bits"),
        (Some(b), _) => b,
        (None, None) => 15,
    };
    let client_bits = match (p.client_max_window_bits, config.client_max_window_bits) {
        (Some(None), _) => return Err("client_max_window_bits answered without a value"),
        (Some(Some(b)), Some(ours)) if b > ours => return Err("client window larger than offered"),
        (Some(Some(b)), _) => b,
        (None, Some(ours)) => ours,
        (None, None) => 15,
    };
    Ok(Some(Negotiated {
        local_no_context_takeover: p.client_no_context_takeover
            || config.client_no_context_takeover,
        remote_no_context_takeover: p.server_no_context_takeover,
        local_max_window_bits: client_bits,
        remote_max_window_bits: server_bits,
    }))
}

// The tests set fields one by one, as users outside the crate must (the config is
// `#[non_exhaustive]`).
#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    fn accept(offer: &str, config: &DeflateConfig) -> Option<(String, Negotiated)> {
        accept_offer([offer.as_bytes()], config).unwrap()
    }

    #[test]
    fn default_offer_and_answer() {
        let client = DeflateConfig::default();
        let offer = offer_header(&client);
        assert_eq!(offer, "permessage-deflate; client_max_window_bits");
        let (answer, server) = accept(&offer, &DeflateConfig::default()).unwrap();
        assert_eq!(answer, "permessage-deflate");
        let client_side = validate_answer([answer.as_bytes()], &client)
            .unwrap()
            .unwrap();
        assert_eq!(
            server.local_max_window_bits,
            client_side.remote_max_window_bits
        );
        assert_eq!(
            server.remote_max_window_bits,
            client_side.local_max_window_bits
        );
    }

    #[test]
    fn every_combination_agrees_on_both_sides() {
        let windows = [None, Some(9), Some(12), Some(15)];
        for server_nct in [false, true] {
            for client_nct in [false, true] {
                for server_bits in windows {
                    for client_bits in windows {
                        for server_side_bits in windows {
                            let mut client = DeflateConfig::default();
                            client.server_no_context_takeover = server_nct;
                            client.client_no_context_takeover = client_nct;
                            client.server_max_window_bits = server_bits;
                            client.client_max_window_bits = client_bits;
                            let mut server_cfg = DeflateConfig::default();
                            server_cfg.server_max_window_bits = server_side_bits;
                            server_cfg.client_max_window_bits = server_side_bits;
                            let offer = offer_header(&client);
                            let (answer, server) = accept(&offer, &server_cfg)
                                .unwrap_or_else(|| panic!("declined {offer}"));
                            let c = validate_answer([answer.as_bytes()], &client)
                                .unwrap_or_else(|e| panic!("{offer} -> {answer}: {e}"))
                                .unwrap();
                            assert_eq!(
                                server.local_no_context_takeover,
                                c.remote_no_context_takeover
                            );
                            assert_eq!(
                                server.remote_no_context_takeover,
                                c.local_no_context_takeover
                            );
                            assert_eq!(
                                server.local_max_window_bits, c.remote_max_window_bits,
                                "{offer} -> {answer}"
                            );
                            assert_eq!(
                                server.remote_max_window_bits, c.local_max_window_bits,
                                "{offer} -> {answer}"
                            );
                            assert!(server.local_no_context_takeover >= server_nct);
                            if let Some(b) = server_bits {
                                assert!(server.local_max_window_bits <= b);
                            }
                            if let Some(b) = client_bits {
                                assert!(c.local_max_window_bits <= b);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_offers_are_declined_and_the_next_one_taken() {
        let config = DeflateConfig::default();
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "x-other",
        ] {
            assert_eq!(accept(bad, &config), None, "{bad}");
            let (answer, _) = accept(&format!("{bad}, permessage-deflate"), &config).unwrap();
            assert_eq!(answer, "permessage-deflate");
        }
        assert!(accept_offer(["permessage-deflate; x=\"".as_bytes()], &config).is_err());
        // A server that must limit the client's window declines clients that can't be limited.
        let mut limiting = DeflateConfig::default();
        limiting.client_max_window_bits = Some(10);
        assert_eq!(accept("permessage-deflate", &limiting), None);
        let (answer, n) = accept("permessage-deflate; client_max_window_bits", &limiting).unwrap();
        assert_eq!(answer, "permessage-deflate; client_max_window_bits=10");
        assert_eq!(n.remote_max_window_bits, 10);
    }

    #[test]
    fn bad_answers_fail_the_client() {
        let mut config = DeflateConfig::default();
        config.server_max_window_bits = Some(10);
        config.server_no_context_takeover = true;
        for bad in [
            "x-unknown",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; foo",
        ] {
            assert!(validate_answer([bad.as_bytes()], &config).is_err(), "{bad}");
        }
        let ok = validate_answer(
            ["permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8".as_bytes()],
            &config,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (ok.remote_max_window_bits, ok.local_max_window_bits),
            (9, 8)
        );
    }
}
