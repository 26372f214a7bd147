//! Sprig's certificate functions: `genCA`, `genSelfSignedCert`, `genSignedCert`,
//! `genPrivateKey`, `buildCustomCert`. Keys and certificates are random by design (the
//! conformance test masks them); their shape follows Sprig: RSA 2048 keys as PKCS#1
//! "RSA PRIVATE KEY", a certificate object with `Cert` and `Key`.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::{call_err, Args, Registry};
use crate::exec::{FnError, FnResult};
use crate::value::Value;

pub(super) fn register(r: &mut Registry) {
    // keys are drawn by the key generator itself, from the operating system: counted as draws
    r.engine("genCA", |e, _, a| drawn(e, gen_ca(a)));
    r.engine("genSelfSignedCert", |e, _, a| {
        drawn(e, gen_self_signed_cert(a))
    });
    r.engine("genSignedCert", |e, _, a| drawn(e, gen_signed_cert(a)));
    r.engine("genPrivateKey", |e, _, a| drawn(e, gen_private_key(a)));
    r.pure("buildCustomCert", build_custom_cert);
}

fn drawn(e: &mut crate::exec::Engine, r: FnResult) -> FnResult {
    e.draws += 1;
    r
}

fn cert_obj(cert: String, key: String) -> Value {
    let mut m = BTreeMap::new();
    m.insert("Cert".to_string(), Value::string(cert));
    m.insert("Key".to_string(), Value::string(key));
    Value::map(m)
}

/// A DER TLV at the start of `d`: (tag, content, rest).
fn der_tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *d.first()?;
    let l0 = *d.get(1)? as usize;
    let (len, hdr) = if l0 < 0x80 {
        (l0, 2)
    } else {
        let n = l0 & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *d.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let content = d.get(hdr..hdr + len)?;
    Some((tag, content, &d[hdr + len..]))
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo`.
fn pkcs8_to_pkcs1(p8: &[u8]) -> Option<Vec<u8>> {
    let (_, seq, _) = der_tlv(p8)?;
    let (_, _version, rest) = der_tlv(seq)?;
    let (_, _alg, rest) = der_tlv(rest)?;
    let (tag, key, _) = der_tlv(rest)?;
    (tag == 0x04).then(|| key.to_vec())
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn rsa_key() -> Result<(rcgen::KeyPair, String), FnError> {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
        .map_err(|e| call_err(format!("error generating RSA private key: {e}")))?;
    let p1 = pkcs8_to_pkcs1(&kp.serialize_der())
        .ok_or_else(|| call_err("error encoding RSA private key"))?;
    Ok((kp, pem("RSA PRIVATE KEY", &p1)))
}

fn params(
    cn: &str,
    ips: &[String],
    dns: &[String],
    days: i64,
    ca: bool,
) -> Result<rcgen::CertificateParams, FnError> {
    let mut p = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    p.distinguished_name = dn;
    for ip in ips {
        let addr: std::net::IpAddr = ip
            .parse()
            .map_err(|_| call_err(format!("error parsing ip: {ip}")))?;
        p.subject_alt_names.push(rcgen::SanType::IpAddress(addr));
    }
    for d in dns {
        let name = d.clone().try_into().map_err(|e| call_err(format!("{e}")))?;
        p.subject_alt_names.push(rcgen::SanType::DnsName(name));
    }
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now;
    p.not_after = now + time::Duration::days(days);
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| call_err(e.to_string()))?;
    serial[0] &= 0x7f;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    if ca {
        p.key_usages.push(rcgen::KeyUsagePurpose::KeyCertSign);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    } else {
        p.is_ca = rcgen::IsCa::ExplicitNoCa;
    }
    Ok(p)
}

/// A list parameter (`[]interface{}`) of strings: nil is empty.
fn strings_of(a: &Args, i: usize) -> Result<Vec<String>, FnError> {
    match a.v(i) {
        Value::Nil => Ok(Vec::new()),
        Value::List(l) => Ok(l.iter().map(crate::value::strval).collect()),
        _ => Err(a.wrong(i, "[]interface {}")),
    }
}

fn gen_ca(a: Args) -> FnResult {
    a.want(2)?;
    let cn = a.s(0)?;
    let days = a.i(1)?;
    let (kp, key) = rsa_key()?;
    let p = params(&cn, &[], &[], days, true)?;
    let cert = p
        .self_signed(&kp)
        .map_err(|e| call_err(format!("error creating certificate: {e}")))?;
    Ok(cert_obj(pem("CERTIFICATE", cert.der()), key))
}

fn gen_self_signed_cert(a: Args) -> FnResult {
    a.want(4)?;
    let cn = a.s(0)?;
    let ips = strings_of(&a, 1)?;
    let dns = strings_of(&a, 2)?;
    let days = a.i(3)?;
    let (kp, key) = rsa_key()?;
    let p = params(&cn, &ips, &dns, days, false)?;
    let cert = p
        .self_signed(&kp)
        .map_err(|e| call_err(format!("error creating certificate: {e}")))?;
    Ok(cert_obj(pem("CERTIFICATE", cert.der()), key))
}

fn ca_of(v: &Value) -> Result<(String, String), FnError> {
    let get = |m: &crate::value::MapRef, k: &str| match m.borrow().get(k) {
        Some(Value::Str(s)) => s.to_string(),
        _ => String::new(),
    };
    match v {
        Value::Map(m) => Ok((get(m, "Cert"), get(m, "Key"))),
        v => Err(FnError::Arg(
            4,
            format!(
                "wrong type for value; expected sprig.certificate; got {}",
                v.type_name()
            ),
        )),
    }
}

fn gen_signed_cert(a: Args) -> FnResult {
    a.want(5)?;
    let cn = a.s(0)?;
    let ips = strings_of(&a, 1)?;
    let dns = strings_of(&a, 2)?;
    let days = a.i(3)?;
    let (ca_cert, ca_key) = ca_of(&a.v(4))?;
    let ca_kp = rcgen::KeyPair::from_pem(&ca_key)
        .map_err(|e| call_err(format!("error decoding CA private key: {e}")))?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_cert, ca_kp)
        .map_err(|e| call_err(format!("error parsing CA certificate: {e}")))?;
    let (kp, key) = rsa_key()?;
    let p = params(&cn, &ips, &dns, days, false)?;
    let cert = p
        .signed_by(&kp, &issuer)
        .map_err(|e| call_err(format!("error creating certificate: {e}")))?;
    Ok(cert_obj(pem("CERTIFICATE", cert.der()), key))
}

fn gen_private_key(a: Args) -> FnResult {
    a.want(1)?;
    let typ = a.s(0)?;
    let alg = match typ.as_str() {
        "rsa" => return Ok(Value::string(rsa_key()?.1)),
        "ecdsa" => &rcgen::PKCS_ECDSA_P256_SHA256,
        "ed25519" => &rcgen::PKCS_ED25519,
        // sprig's genPrivateKey prints its error as the key
        _ => return Ok(Value::string(format!("Unknown type {typ}"))),
    };
    let kp = rcgen::KeyPair::generate_for(alg).map_err(|e| call_err(e.to_string()))?;
    Ok(Value::string(kp.serialize_pem()))
}

fn build_custom_cert(a: Args) -> FnResult {
    a.want(2)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let crt = b64
        .decode(a.s(0)?.as_bytes())
        .map_err(|_| call_err("unable to decode base64 certificate"))?;
    let key = b64
        .decode(a.s(1)?.as_bytes())
        .map_err(|_| call_err("unable to decode base64 private key"))?;
    let crt = String::from_utf8_lossy(&crt).into_owned();
    let key = String::from_utf8_lossy(&key).into_owned();
    if !crt.contains("-----BEGIN ") {
        return Err(call_err("unable to decode certificate"));
    }
    if !key.contains("-----BEGIN ") {
        return Err(call_err("unable to decode private key"));
    }
    Ok(cert_obj(crt, key))
}
