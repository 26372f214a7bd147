//! Everything this program prints goes through `secrets::redact`: a decrypted value that reached
//! a message (a server's error quoting it, a chart putting it into a ConfigMap) is shown as
//! `(sensitive)`. These shadow the standard macros for the whole command line (`main.rs` and
//! every module of `cli/`, through `#[macro_use]`).

macro_rules! println {
    () => { std::println!() };
    ($($t:tt)*) => { std::println!("{}", envboot::secrets::redact(&format!($($t)*))) };
}
macro_rules! print {
    ($($t:tt)*) => { std::print!("{}", envboot::secrets::redact(&format!($($t)*))) };
}
macro_rules! eprintln {
    () => { std::eprintln!() };
    ($($t:tt)*) => { std::eprintln!("{}", envboot::secrets::redact(&format!($($t)*))) };
}
