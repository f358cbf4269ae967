//! Slow HTTP clients for the starvation test and its benchmark: connections
//! from another loopback address (any 127/8 address works on Linux) that
//! start a request and then trickle one header byte per tick or go silent,
//! with a count of the ones the server has closed.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;

/// A TCP connection from `source` to `to` (IPv4).
pub fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let IpAddr::V4(dst) = to.ip() else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket, owned by the TcpStream at once (so closed on
    // error), bound and connected with valid sockaddr_in values.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let (from, dest) = (sin(source, 0), sin(dst, to.port()));
        if libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len) != 0
            || libc::connect(fd, (&dest as *const libc::sockaddr_in).cast(), len) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

pub struct Slow {
    stream: TcpStream,
    pub trickle: bool,
    pub closed: bool,
}

/// `n` slow connections to `to`: even ones from 127.0.0.2 trickle, odd
/// ones from 127.0.0.3 stay silent after the first header line.
pub fn open(n: usize, to: SocketAddr) -> std::io::Result<Vec<Slow>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let trickle = i % 2 == 0;
        let source = Ipv4Addr::new(127, 0, 0, if trickle { 2 } else { 3 });
        let mut stream = connect_from(source, to)?;
        stream.write_all(b"GET /api/v1/ready HTTP/1.1\r\nHost: x\r\n")?;
        stream.set_nonblocking(true)?;
        out.push(Slow {
            stream,
            trickle,
            closed: false,
        });
    }
    Ok(out)
}

/// One tick: each open trickler sends a byte when `write` is set; every
/// open connection is read without blocking to notice a close (an error
/// answer before it is read and ignored).
pub fn tick(slow: &mut [Slow], write: bool) {
    for s in slow.iter_mut().filter(|s| !s.closed) {
        if s.trickle && write && s.stream.write(b"a").is_err() {
            s.closed = true;
            continue;
        }
        let mut buf = [0u8; 512];
        loop {
            match s.stream.read(&mut buf) {
                Ok(0) => s.closed = true,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => s.closed = true,
            }
            break;
        }
    }
}

/// (closed tricklers, closed silent ones).
pub fn closed(slow: &[Slow]) -> (usize, usize) {
    let count = |trickle: bool| {
        slow.iter()
            .filter(|s| s.trickle == trickle && s.closed)
            .count()
    };
    (count(true), count(false))
}
