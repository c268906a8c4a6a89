//! What standard gRPC tools see of wgd's API: `tests/scripts/grpc_probe.py`
//! (Python's grpcio with grpcio-health-checking and grpcio-reflection, and
//! no `.proto` file of wgd's) run inside a namespace, its JSON answer
//! returned; and a test PKI made with the `openssl` command for the TCP
//! API's mutual TLS.

use std::path::{Path, PathBuf};

use anyhow::Context;
use wgd_labs::Namespace;

/// `grpc_probe.py TARGET ARGS...` run in `namespace`: its JSON output.
/// A call that failed is `{"error": CODE, "details": ...}` in its place.
pub fn probe(
    namespace: &Namespace,
    target: &str,
    args: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/grpc_probe.py");
    let script = script.to_str().context("a UTF-8 path")?;
    let mut argv = vec!["python3", script, target];
    argv.extend(args);
    let output = namespace.check(&argv).context(
        "grpc_probe.py failed (scripts/setup installs grpcio-health-checking and grpcio-reflection)",
    )?;
    serde_json::from_str(&output)
        .with_context(|| format!("grpc_probe.py printed no JSON: {output}"))
}

/// A CA, a server certificate for 127.0.0.1 and ::1, a client certificate
/// from that CA, and one from a CA the server does not know: PEM files in a
/// folder, keys mode 0600.
#[derive(Debug)]
pub struct TestPki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
}

impl TestPki {
    pub fn generate(dir: &Path) -> anyhow::Result<Self> {
        let file = |name: &str| dir.join(name);
        let ca = Self::authority(dir, "ca", "wgd test CA")?;
        let stranger_ca = Self::authority(dir, "stranger-ca", "a CA wgd does not know")?;
        let server = Self::leaf(
            dir,
            &ca,
            "server",
            "subjectAltName=IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n",
        )?;
        let client = Self::leaf(dir, &ca, "client", "extendedKeyUsage=clientAuth\n")?;
        let stranger = Self::leaf(
            dir,
            &stranger_ca,
            "stranger",
            "extendedKeyUsage=clientAuth\n",
        )?;
        Ok(TestPki {
            ca: file("ca.pem"),
            server_cert: server.0,
            server_key: server.1,
            client_cert: client.0,
            client_key: client.1,
            stranger_cert: stranger.0,
            stranger_key: stranger.1,
        })
    }

    /// A self-signed CA: `NAME.pem` and `NAME.key`.
    fn authority(dir: &Path, name: &str, subject: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={subject}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            path(&key)?,
            "-out",
            path(&cert)?,
        ])?;
        Ok((cert, key))
    }

    /// A certificate `NAME.pem` (key `NAME.key`) that `authority` signed,
    /// with `extensions` (openssl's extfile lines).
    fn leaf(
        dir: &Path,
        authority: &(PathBuf, PathBuf),
        name: &str,
        extensions: &str,
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        let (request, extfile) = (
            dir.join(format!("{name}.csr")),
            dir.join(format!("{name}.ext")),
        );
        std::fs::write(&extfile, extensions)?;
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN=wgd test {name}"),
            "-keyout",
            path(&key)?,
            "-out",
            path(&request)?,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(&request)?,
            "-days",
            "2",
            "-CA",
            path(&authority.0)?,
            "-CAkey",
            path(&authority.1)?,
            "-CAcreateserial",
            "-extfile",
            path(&extfile)?,
            "-out",
            path(&cert)?,
        ])?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        Ok((cert, key))
    }
}

fn path(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("a UTF-8 path")
}

fn openssl(args: &[&str]) -> anyhow::Result<()> {
    let output = std::process::Command::new("openssl")
        .args(args)
        .output()
        .context("running openssl (is it installed?)")?;
    anyhow::ensure!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
