//! Dialling TCP: the resolved addresses of the allowed family, from the local address asked
//! for (the seed's `family` and `localAddress`), to the server or to the proxy.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

/// The address family the client may connect over ([`ClientBuilder::family`](super::ClientBuilder::family)), the `family`
/// option of the seed library (4, 6, or 0 for either).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpFamily {
    /// Either family: every resolved address, in the resolver's order (the default).
    #[default]
    Any,
    /// IPv4 addresses only.
    V4,
    /// IPv6 addresses only.
    V6,
}

impl IpFamily {
    /// Whether `ip` belongs to this family.
    pub fn admits(self, ip: IpAddr) -> bool {
        match self {
            IpFamily::Any => true,
            IpFamily::V4 => ip.is_ipv4(),
            IpFamily::V6 => ip.is_ipv6(),
        }
    }
}

/// How TCP connections are dialled (to the server, or to the proxy): the local address to
/// bind and the address family allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Dial {
    pub(super) local_addr: Option<IpAddr>,
    pub(super) family: IpFamily,
}

impl Dial {
    /// Resolves `host` and connects to the first of its addresses that fits (tried in the
    /// resolver's order), bound to the local address if one is set.
    pub(crate) async fn connect(&self, host: &str, port: u16) -> std::io::Result<TcpStream> {
        if *self == Dial::default() {
            return TcpStream::connect((host, port)).await;
        }
        let mut last_error = None;
        for addr in tokio::net::lookup_host((host, port)).await? {
            if !self.admits(addr.ip()) {
                continue;
            }
            match self.connect_to(addr).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            let what = match (self.family, self.local_addr) {
                (IpFamily::V4, _) => "IPv4 address".to_owned(),
                (IpFamily::V6, _) => "IPv6 address".to_owned(),
                (IpFamily::Any, Some(local)) => format!("address of the family of {local}"),
                (IpFamily::Any, None) => "address".to_owned(),
            };
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("{host} has no {what}"),
            )
        }))
    }

    /// Whether a resolved address may be tried: of the allowed family, and of the local
    /// address's family when one is set.
    pub(super) fn admits(&self, ip: IpAddr) -> bool {
        self.family.admits(ip)
            && self
                .local_addr
                .map_or(true, |l| l.is_ipv4() == ip.is_ipv4())
    }

    async fn connect_to(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(local) = self.local_addr {
            socket.bind(SocketAddr::new(local, 0))?;
        }
        socket.connect(addr).await
    }
}
