//! Hashes, random values and Sprig's cryptographic functions. Random output comes from the
//! engine's deterministic generator (the conformance test masks it).

use sha2::Digest;

use super::{Args, Registry};
use crate::exec::{Engine, FnResult, State};
use crate::value::Value;

pub(super) fn register(r: &mut Registry) {
    r.pure("sha256sum", sha256sum);
    r.pure("sha512sum", sha512sum);
    r.pure("sha1sum", sha1sum);
    r.pure("adler32sum", adler32sum);
    r.engine("randAlphaNum", rand_alpha_num);
    r.engine("randAlpha", rand_alpha_num);
    r.engine("randNumeric", rand_alpha_num);
    r.engine("randAscii", rand_alpha_num);
    r.engine("uuidv4", uuidv4);
    r.engine("htpasswd", htpasswd);
    r.engine("bcrypt", bcrypt);
    r.unsupported(&["derivePassword", "encryptAES", "decryptAES"]);
}

fn sha256sum(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(hex::encode(sha2::Sha256::digest(
        a.s(0)?.as_bytes(),
    ))))
}

fn sha512sum(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(hex::encode(sha2::Sha512::digest(
        a.s(0)?.as_bytes(),
    ))))
}

fn sha1sum(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(hex::encode(sha1(a.s(0)?.as_bytes()))))
}

fn adler32sum(a: Args) -> FnResult {
    a.want(1)?;
    let (mut x, mut y) = (1u32, 0u32);
    for b in a.s(0)?.bytes() {
        x = (x + b as u32) % 65521;
        y = (y + x) % 65521;
    }
    Ok(Value::string(((y << 16) | x).to_string()))
}

fn rand_alpha_num(eng: &mut Engine, _st: &State, a: Args) -> FnResult {
    a.want(1)?;
    let n = a.i(0)?;
    super::count_within_budget(n, 1)?;
    let alpha: Vec<u8> = match a.name {
        "randAlphaNum" => ALNUM.to_vec(),
        "randAlpha" => ALNUM[..52].to_vec(),
        "randNumeric" => ALNUM[52..].to_vec(),
        _ => (32u8..127).collect(),
    };
    Ok(Value::string(rand_string(eng, n, &alpha)))
}

fn uuidv4(eng: &mut Engine, _st: &State, _: Args) -> FnResult {
    let h = format!("{:016x}{:016x}", rand_next(eng), rand_next(eng));
    Ok(Value::string(format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )))
}

fn htpasswd(eng: &mut Engine, _st: &State, a: Args) -> FnResult {
    a.want(2)?;
    let user = a.s(0)?;
    let salt = rand_string(
        eng,
        53,
        b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    );
    Ok(Value::string(format!("{user}:$2a$10${salt}")))
}

fn bcrypt(eng: &mut Engine, _st: &State, a: Args) -> FnResult {
    a.want(1)?;
    let salt = rand_string(
        eng,
        53,
        b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    );
    Ok(Value::string(format!("$2a$10${salt}")))
}

pub(super) fn rand_next(e: &mut Engine) -> u64 {
    e.draws += 1;
    rand_core::RngCore::next_u64(&mut e.rng)
}

/// A uniform draw from `0..n` (rejection sampling, as Go's `crypto/rand.Int`: no modulo bias).
pub(super) fn rand_below(e: &mut Engine, n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let x = rand_next(e);
        if x < zone {
            return x % n;
        }
    }
}

fn rand_string(e: &mut Engine, n: i64, alphabet: &[u8]) -> String {
    (0..n.max(0))
        .map(|_| alphabet[rand_below(e, alphabet.len() as u64) as usize] as char)
        .collect()
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bitlen = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bitlen.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let (mut a, mut b, mut c, mut d, mut e) = (h[0], h[1], h[2], h[3], h[4]);
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | ((!b) & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}
