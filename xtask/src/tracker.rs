//! `cargo xtask build-tracker`: the browser tracker, ready to serve, in `dist/tracker/`.
//!
//! 1. `cargo build -p clicktrail-tracker --target wasm32-unknown-unknown --profile wasm`
//!    (installs the wasm32 target through rustup if it is missing);
//! 2. wasm-bindgen (`--target web`, no TypeScript) → the glue + `ct_wasm_bg.wasm`;
//!    the JS modules the tracker imports (`tracker-wasm/js/dom.js`) are put into
//!    the glue;
//! 3. `wasm-opt -Oz` (npm package binaryen) on the wasm, installed on first use
//!    into `~/.cache/clicktrail/npm`;
//! 4. `ct.js`: the loader `tracker-wasm/js/ct.js` (the readable source) with the
//!    glue inside, so that a page makes one request for the script (measured on
//!    the bench page: about 3 ms less main-thread work per load than importing
//!    the glue as a module), and the module's URL versioned by its hash; then
//!    terser on it (without npm the files ship as they are: they work, they are
//!    just bigger);
//! 5. V8's compile hint (`//# allFunctionsCalledOnLoad`) atop `ct.js`;
//! 6. a size table, raw and gzipped, since every byte is paid by every visitor.
//!
//! `CLICKTRAIL_KEEP_NAMES=1` keeps function names in the wasm, for size analysis
//! (twiggy, `wasm-objdump`), and in `ct.js` too, for CPU profiles.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use flate2::{Compression, write::GzEncoder};
use wasm_bindgen_cli_support::{Bindgen, EncodeInto};

use crate::{cargo, run, target_dir};

const TARGET: &str = "wasm32-unknown-unknown";
/// The npm packages that shrink the output: binaryen's `wasm-opt` for the wasm,
/// terser for the loader (which holds the wasm-bindgen glue).
const NPM_PACKAGES: &[&str] = &["binaryen@132", "terser@5"];
/// What rustc's wasm32 output uses; wasm-opt refuses a module using anything else.
const WASM_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];
/// The files a site serves, in the order the browser fetches them.
const SHIPPED: &[&str] = &["ct.js", "ct_wasm_bg.wasm"];

/// Build the tracker into `ROOT/dist/tracker/` and print its size.
pub(crate) fn build(root: &Path) -> Result<()> {
    ensure_wasm_target(root)?;
    // wasm-bindgen reads the `target_features` section (reference types → smaller
    // glue), which `strip = true` would remove; wasm-opt strips it afterwards.
    run(cargo(root)
        .args([
            "build",
            "-p",
            "clicktrail-tracker",
            "--target",
            TARGET,
            "--profile",
            "wasm",
        ])
        .args(["--config", "profile.wasm.strip=false"]))?;
    let wasm = target_dir(root)?
        .join(TARGET)
        .join("wasm")
        .join("clicktrail_tracker.wasm");

    let out = root.join("dist").join("tracker");
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("removing the old {}", out.display()))?;
    }
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let keep_names =
        std::env::var_os("CLICKTRAIL_KEEP_NAMES").is_some_and(|v| !v.is_empty() && v != "0");
    Bindgen::new()
        .input_path(&wasm)
        .keep_debug(keep_names)
        .web(true)?
        .typescript(false)
        .out_name("ct_wasm")
        // TextEncoder.encodeInto is in every browser that runs wasm-bindgen's ES module glue.
        .encode_into(EncodeInto::Always)
        // The loader always passes the wasm URL.
        .omit_default_module_path(true)
        .generate(&out)
        .with_context(|| format!("wasm-bindgen on {}", wasm.display()))?;

    let bg = out.join("ct_wasm_bg.wasm");
    let glue = out.join("ct_wasm.js");
    inline_snippets(&glue, &out.join("snippets"))?;
    let tools = npm_tools()?;
    if let Some(tools) = &tools {
        run(Command::new(&tools.wasm_opt)
            .arg(&bg)
            .arg("-o")
            .arg(&bg)
            .arg("-Oz")
            .args(WASM_FEATURES)
            .arg(if keep_names { "-g" } else { "--strip-debug" })
            .args(["--strip-producers", "--strip-target-features"]))
        .context(
            "wasm-opt (a missing --enable-… flag means rustc now emits a newer wasm feature)",
        )?;
    }
    let loader = out.join("ct.js");
    compose_loader(&root.join("tracker-wasm/js/ct.js"), &glue, &bg, &loader)?;
    match &tools {
        Some(tools) => run(Command::new(&tools.terser)
            .arg(&loader)
            .args(["--compress", "--mangle", "--ecma", "2017"])
            // Function names kept too, for profiles.
            .args(if keep_names {
                &["--keep-fnames"][..]
            } else {
                &[]
            })
            .arg("-o")
            .arg(&loader))
        .context("terser on the loader")?,
        None => println!(
            "npm not available: shipping the tracker without wasm-opt and terser (install Node.js and npm for a smaller one)"
        ),
    }
    compile_hint(&loader)?;
    report(&out)
}

/// Make sure rustc has the wasm32 standard library, installing it through rustup if not.
fn ensure_wasm_target(root: &Path) -> Result<()> {
    let libdir = Command::new("rustc")
        .current_dir(root)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .context("running rustc")?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&libdir.stdout).trim());
    if libdir.is_dir() {
        return Ok(());
    }
    println!("installing the {TARGET} target with rustup");
    run(Command::new("rustup")
        .current_dir(root)
        .args(["target", "add", TARGET]))
    .with_context(|| format!("the {TARGET} target is missing and rustup could not add it"))
}

/// The optimisers from the npm registry.
struct NpmTools {
    wasm_opt: PathBuf,
    terser: PathBuf,
}

/// `wasm-opt` (package binaryen) and `terser`, installed on first use into
/// `~/.cache/clicktrail/npm`; None when npm is not there or the install fails.
fn npm_tools() -> Result<Option<NpmTools>> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let prefix = PathBuf::from(home).join(".cache/clicktrail/npm");
    let bin = prefix.join("node_modules/.bin");
    let tools = NpmTools {
        wasm_opt: bin.join("wasm-opt"),
        terser: bin.join("terser"),
    };
    let present = |t: &NpmTools| t.wasm_opt.exists() && t.terser.exists();
    if present(&tools) {
        return Ok(Some(tools));
    }
    let npm_ok = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !npm_ok {
        return Ok(None);
    }
    fs::create_dir_all(&prefix).with_context(|| format!("creating {}", prefix.display()))?;
    println!(
        "installing {} into {}",
        NPM_PACKAGES.join(" "),
        prefix.display()
    );
    let installed = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&prefix)
        .args(NPM_PACKAGES)
        .status()
        .is_ok_and(|s| s.success());
    Ok((installed && present(&tools)).then_some(tools))
}

/// V8's explicit compile hint: every function of the file is compiled while the
/// file is parsed (off the main thread where the browser streams it) and goes
/// into the code cache, instead of on the main thread at its first call. Nearly
/// every function of the glue and the loader runs on load; measured on the bench
/// page, the main thread's JS compiling went from about 2.3 ms to about 0.5 ms
/// per load. Browsers without the hint read a comment.
fn compile_hint(js: &Path) -> Result<()> {
    let code = fs::read_to_string(js).with_context(|| format!("reading {}", js.display()))?;
    fs::write(js, format!("//# allFunctionsCalledOnLoad\n{code}"))
        .with_context(|| format!("writing {}", js.display()))
}

/// The loader `template` with the glue put in place of its `/* GLUE */` line, as a
/// script (the glue's `export`s become plain declarations, its default export
/// `init`), and the module's URL made `ct_wasm_bg.wasm?v=<hash of its bytes>`: a
/// loader cached before an upgrade fetches the module its glue was built for.
/// Writes `out` and removes `glue`.
fn compose_loader(template: &Path, glue: &Path, wasm: &Path, out: &Path) -> Result<()> {
    let template =
        fs::read_to_string(template).with_context(|| format!("reading {}", template.display()))?;
    let mut js = fs::read_to_string(glue).with_context(|| format!("reading {}", glue.display()))?;
    let exports = js
        .rfind("export {")
        .context("the glue has no `export { … }` statement")?;
    let end = exports
        + js[exports..]
            .find(';')
            .context("an unterminated `export` in the glue")?;
    let default = js[exports + "export {".len()..end]
        .trim_end_matches('}')
        .split(',')
        .find_map(|n| n.trim().strip_suffix(" as default"))
        .context("the glue exports no default (init) function")?
        .trim()
        .to_string();
    js.replace_range(exports..=end, &format!("const init = {default};"));
    let js = js.replace("\nexport function ", "\nfunction ");
    let js = encode_long_strings_natively(&js)?;
    let js = contain_traps(&js)?;
    if js.contains("\nexport ") || js.contains("import.meta") || js.contains("\nimport ") {
        bail!(
            "the glue uses module syntax the loader cannot hold (wasm-bindgen changed its output?)"
        );
    }
    let bytes = fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let name = "\"ct_wasm_bg.wasm\"";
    if template.matches("/* GLUE */").count() != 1 || template.matches(name).count() != 1 {
        bail!("the loader template needs one `/* GLUE */` line and one {name}");
    }
    let composed = template
        .replace(name, &format!("\"ct_wasm_bg.wasm?v={hash:016x}\""))
        .replace("/* GLUE */", &js);
    fs::write(out, composed).with_context(|| format!("writing {}", out.display()))?;
    fs::remove_file(glue).with_context(|| format!("removing {}", glue.display()))
}

/// A trap in the module (a bug of the tracker's: a panic, or memory read out of
/// bounds) while it handles one of the page's events would reach the page as an
/// uncaught `RuntimeError`: in its console, its `onerror`, its error monitoring.
/// Every callback into the module (listeners, observers, timers, promises) goes
/// through the glue's closure wrapper, which now ends such a call quietly. The
/// tracker then records nothing more on that page (its state stays borrowed);
/// the page's own calls through the tracker's wrappers (`history.pushState`)
/// still run, since those call the page's function first.
fn contain_traps(js: &str) -> Result<String> {
    let call = "return f(a, state.b, ...args);";
    let (Some(at), 1) = (js.find(call), js.matches(call).count()) else {
        bail!("the glue's closure wrapper changed (wasm-bindgen changed its output?)");
    };
    let finally = at
        + js[at..]
            .find("} finally {")
            .context("the glue's closure wrapper has no `finally`")?;
    let mut out = String::from(js);
    out.insert_str(
        finally,
        "} catch (e) { if (e instanceof WebAssembly.RuntimeError) return; throw e; ",
    );
    Ok(out)
}

/// The glue copies a string into wasm memory a character at a time while it is
/// ASCII, and hands the rest to `TextEncoder`. That loop runs once or twice per
/// page, so V8 interprets it: for the list of links in view (about 20 KB on the
/// bench page) it took 1–1.5 ms of the observer's callback. Strings over 64
/// characters go to `TextEncoder.encode` (native) at once; the glue's own branch
/// for that is reused, so the bytes in memory are the same.
fn encode_long_strings_natively(js: &str) -> Result<String> {
    let branch = "if (realloc === undefined) {";
    if js.matches(branch).count() != 1 {
        bail!("the glue's string copy changed (wasm-bindgen changed its output?)");
    }
    Ok(js.replace(branch, "if (realloc === undefined || arg.length > 64) {"))
}

/// Put the JS snippet modules wasm-bindgen wrote under `snippets` into the glue,
/// each in place of its import statement, as a function scope that returns what
/// was imported (so that no name of a snippet meets one of the glue), and remove
/// `snippets`. The glue imports a snippet's functions by name (`import { a, b as
/// c } from "./snippets/…";`) where it wraps them, and as a namespace (`import *
/// as m from "./snippets/…"`) for those the wasm calls directly. A snippet's
/// exports must be `export function` or `export const` declarations.
fn inline_snippets(glue: &Path, snippets: &Path) -> Result<()> {
    if !snippets.exists() {
        return Ok(());
    }
    let mut js = fs::read_to_string(glue).with_context(|| format!("reading {}", glue.display()))?;
    let mut modules = Vec::<String>::new();
    // An import statement starts a line.
    let next = |js: &str| {
        if js.starts_with("import ") {
            Some(0)
        } else {
            js.find("\nimport ").map(|i| i + 1)
        }
    };
    while let Some(start) = next(&js) {
        let rest = &js[start..];
        let namespace = rest.starts_with("import * as ");
        // A namespace import may end at its line, without `;`.
        let stmt_len = if namespace {
            rest.find(['\n', ';']).unwrap_or(rest.len())
        } else {
            rest.find(';')
                .context("an import statement without `;` in the glue")?
        };
        let stmt = &rest[..stmt_len];
        let (names, from) = stmt
            .strip_prefix("import {")
            .or_else(|| stmt.strip_prefix("import * as "))
            .and_then(|s| s.split_once(" from "))
            .context("an unexpected import statement in the glue")?;
        let from = from.trim().trim_matches(|c| c == '\'' || c == '"');
        let Some(rel) = from.strip_prefix("./snippets/") else {
            bail!("the glue imports {from}, which is not a snippet");
        };
        // Each snippet is one module: its code runs once, whichever way imported.
        let (i, defined) = if let Some(i) = modules.iter().position(|m| m == rel) {
            (i, String::new())
        } else {
            modules.push(rel.to_string());
            let scope = snippet_scope(&snippets.join(rel))?;
            let i = modules.len() - 1;
            (i, format!("const __snippet{i} = {scope};\n"))
        };
        let module = format!("__snippet{i}");
        let inlined = if namespace {
            format!("{defined}const {} = {module};", names.trim())
        } else {
            let bind: Vec<String> = names
                .trim()
                .trim_end_matches('}')
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| {
                    let (name, local) = n.split_once(" as ").unwrap_or((n, n));
                    format!("{}: {}", name.trim(), local.trim())
                })
                .collect();
            format!("{defined}const {{ {} }} = {module}", bind.join(", "))
        };
        js.replace_range(start..start + stmt_len, &inlined);
    }
    fs::write(glue, js).with_context(|| format!("writing {}", glue.display()))?;
    fs::remove_dir_all(snippets).with_context(|| format!("removing {}", snippets.display()))
}

/// A snippet module's code as a function scope run once, which returns the
/// functions and constants the module exports.
fn snippet_scope(path: &Path) -> Result<String> {
    let code = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut declared = Vec::new();
    let code = code
        .lines()
        .map(|l| {
            let Some(decl) = l.strip_prefix("export ") else {
                return l;
            };
            let name = decl
                .strip_prefix("function ")
                .or_else(|| decl.strip_prefix("const "))
                .and_then(|d| {
                    d.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                        .next()
                });
            declared.extend(name.map(str::to_string));
            decl
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(format!(
        "(() => {{\n{code}\nreturn {{ {} }};\n}})()",
        declared.join(", ")
    ))
}

/// Print each shipped file's size, raw and gzipped, and the totals.
fn report(out: &Path) -> Result<()> {
    println!("\n{:<18} {:>9} {:>9}", "dist/tracker/", "bytes", "gzip");
    let (mut raw_total, mut gz_total) = (0, 0);
    for name in SHIPPED {
        let path = out.join(name);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let gz = gzip_len(&bytes)?;
        println!("{name:<18} {:>9} {gz:>9}", bytes.len());
        raw_total += bytes.len();
        gz_total += gz;
    }
    let extra: Vec<String> = fs::read_dir(out)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| !SHIPPED.contains(&n.as_str()))
        .collect();
    if !extra.is_empty() {
        bail!(
            "unexpected files in {}: {}",
            out.display(),
            extra.join(", ")
        );
    }
    println!("{:<18} {raw_total:>9} {gz_total:>9}", "total");
    println!("tracker: {gz_total} bytes gzipped total");
    Ok(())
}

fn gzip_len(bytes: &[u8]) -> Result<usize> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(bytes)?;
    Ok(enc.finish()?.len())
}
