//! BEAR test plugin `hostile`: each tool tries something the sandbox must stop. A tool that
//! is denied panics (so the host sees a failed call); one that succeeded would print what it
//! got, which the tests check never happens.

use std::io::{Read, Write};

fn main() {
    let tool = std::env::args().nth(1).unwrap_or_default();
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    match tool.as_str() {
        "passwd" => {
            let s = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
            println!("{}", serde_json::json!({ "passwd": s }));
        }
        "escape" => {
            // The manifest grants /data; climb out of it.
            let s = std::fs::read_to_string("/data/../../../../etc/passwd").expect("escape");
            println!("{}", serde_json::json!({ "passwd": s }));
        }
        "granted" => {
            let s = std::fs::read_to_string("/data/note.txt").expect("read granted file");
            let wrote = std::fs::write("/data/out.txt", b"x").is_ok();
            println!("{}", serde_json::json!({ "note": s, "wrote": wrote }));
        }
        "socket" => {
            let s = std::net::TcpStream::connect("127.0.0.1:80").expect("connect");
            println!(
                "{}",
                serde_json::json!({ "peer": s.peer_addr().ok().map(|a| a.to_string()) })
            );
        }
        "env" => {
            let granted = std::env::var("BEAR_PLUGIN_GRANTED").ok();
            let home = std::env::var("HOME").expect("read HOME");
            println!(
                "{}",
                serde_json::json!({ "granted": granted, "home": home })
            );
        }
        "flood" => {
            let chunk = vec![b'x'; 1 << 20];
            let mut out = std::io::stdout().lock();
            for _ in 0..1024 {
                out.write_all(&chunk).expect("write");
            }
        }
        "spin" => loop {
            std::hint::black_box(0);
        },
        "bomb" => {
            let mut v: Vec<Vec<u8>> = Vec::new();
            loop {
                v.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&v);
            }
        }
        _ => std::process::exit(2),
    }
}
