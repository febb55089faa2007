//! The `#[netns_test]` attribute of [netns-test](https://docs.rs/netns-test).
//!
//! Use it through the `netns-test` crate, which re-exports it as both `netns_test::netns_test`
//! and `netns_test::test`; this crate only turns the attribute into a call of
//! `::netns_test::__private::run_test`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, Path, ReturnType};

/// The valid options, as listed in error messages.
const VALID_OPTIONS: &str = "valid options are `timeout = \"30s\"`, `topology = path::to::fn`, \
                             `topology_file = \"path/to/file.toml\"` and `crate = path::to::netns_test`";

/// Runs the test in a fresh child process inside its own network namespace.
///
/// See the `netns-test` crate for the full documentation.
#[proc_macro_attribute]
pub fn netns_test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into()).into()
}

/// The same attribute as [`macro@netns_test`], under the name `test` so that it can be written
/// `#[netns_test::test]` (rstest recognises a test attribute by its last path segment).
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into()).into()
}

fn expand(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = syn::Error::new_spanned(
                &item,
                "#[netns_test] can only be used on a function (`fn` or `async fn`)",
            );
            return with_error(item, error);
        }
    };
    let test_above = builtin_test_written_above(Span::call_site());
    let result = Config::parse(args).and_then(|config| {
        check_function(&func)?;
        if test_above {
            check_test_above(&func)?;
        }
        Ok(config)
    });
    match result {
        Ok(config) => generate(config, func, test_above),
        Err(error) => with_error(func.into_token_stream(), error),
    }
}

/// Emits the user's item unchanged next to the error, so that the user sees one precise error
/// instead of a cascade of "function not found" errors.
fn with_error(item: TokenStream2, error: syn::Error) -> TokenStream2 {
    let error = error.to_compile_error();
    quote! { #error #item }
}

/// Where the topology of a test comes from.
enum TopologyOption {
    Function(Path),
    File(LitStr),
}

#[derive(Default)]
struct Config {
    /// The text of `timeout = "..."`, which the library's grammar reads at compile time.
    timeout: Option<LitStr>,
    topology: Option<(TopologyOption, Span)>,
    krate: Option<Path>,
}

impl Config {
    fn parse(args: TokenStream2) -> syn::Result<Self> {
        let mut config = Config::default();
        let mut seen: Vec<String> = Vec::new();
        let parser = syn::meta::parser(|meta| {
            let name = match meta.path.get_ident() {
                Some(ident) => ident.to_string(),
                None => meta.path.to_token_stream().to_string().replace(' ', ""),
            };
            if seen.contains(&name) {
                return Err(meta.error(format!("duplicate option `{name}`")));
            }
            match name.as_str() {
                "timeout" => {
                    config.timeout = Some(meta.value()?.parse()?);
                }
                "topology" | "topology_file" => {
                    if let Some((_, _)) = &config.topology {
                        return Err(meta.error(
                            "`topology` and `topology_file` cannot be used together: \
                             a test has one topology",
                        ));
                    }
                    let span = meta.path.span();
                    let option = if name == "topology" {
                        let value = meta.value()?;
                        if value.peek(LitStr) {
                            let file: LitStr = value.parse()?;
                            return Err(syn::Error::new(
                                file.span(),
                                format!(
                                    "`topology` takes a function that returns the topology; \
                                     for a topology file, write `topology_file = {:?}`",
                                    file.value()
                                ),
                            ));
                        }
                        TopologyOption::Function(value.parse()?)
                    } else {
                        let file: LitStr = meta.value()?.parse()?;
                        if file.value().is_empty() || file.value().starts_with('/') {
                            return Err(syn::Error::new(
                                file.span(),
                                "`topology_file` must be a path relative to the crate's \
                                 Cargo.toml directory, e.g. \"tests/topologies/star.toml\"",
                            ));
                        }
                        TopologyOption::File(file)
                    };
                    config.topology = Some((option, span));
                }
                "crate" => {
                    let value = meta.value()?;
                    let path: Path =
                        if value.peek(LitStr) { value.parse::<LitStr>()?.parse()? } else { value.parse()? };
                    config.krate = Some(path);
                }
                _ => {
                    return Err(meta.error(format!("unknown option `{name}`; {VALID_OPTIONS}")));
                }
            }
            seen.push(name);
            Ok(())
        });
        syn::parse::Parser::parse2(parser, args)?;
        Ok(config)
    }
}

fn check_function(func: &ItemFn) -> syn::Result<()> {
    let sig = &func.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(&sig.generics, "#[netns_test] functions cannot be generic"));
    }
    if let Some(token) = &sig.constness {
        return Err(syn::Error::new_spanned(token, "#[netns_test] functions cannot be `const`"));
    }
    if let Some(token) = &sig.unsafety {
        return Err(syn::Error::new_spanned(token, "#[netns_test] functions cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new_spanned(abi, "#[netns_test] functions cannot be `extern`"));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new_spanned(variadic, "#[netns_test] functions cannot be variadic"));
    }
    for input in &sig.inputs {
        if let FnArg::Receiver(receiver) = input {
            return Err(syn::Error::new_spanned(receiver, "#[netns_test] functions cannot take `self`"));
        }
    }
    if sig.inputs.len() > 1 {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            "#[netns_test] functions take at most one parameter, the network \
             (`net: &netns_test::Network`); with rstest, put #[rstest] above \
             #[netns_test::test] and call `netns_test::network()` in the body",
        ));
    }
    for attr in &func.attrs {
        let path = attr.path();
        let last = path.segments.last().map(|segment| segment.ident.to_string());
        if last.as_deref() == Some("rstest") {
            return Err(syn::Error::new_spanned(
                attr,
                "#[rstest] must come above #[netns_test::test] so that it expands first",
            ));
        }
        if last.as_deref() == Some("test") && !is_builtin_test(path) {
            return Err(syn::Error::new_spanned(
                attr,
                "#[netns_test] cannot be combined with another test attribute; it already runs \
                 `async fn` tests on its own runtime",
            ));
        }
    }
    Ok(())
}

/// With `#[test]` written above `#[netns_test]`, the built-in attribute expands first and
/// registers the function as written. That is right for a function without parameters (this
/// attribute then adds no second `#[test]`), but the built-in attribute refuses a parameter or
/// an `async fn` before this attribute can turn it into a plain test function.
fn check_test_above(func: &ItemFn) -> syn::Result<()> {
    let what = if func.sig.asyncness.is_some() {
        "an `async fn`"
    } else if !func.sig.inputs.is_empty() {
        "a function with a parameter"
    } else {
        return Ok(());
    };
    Err(syn::Error::new(
        Span::call_site(),
        format!(
            "#[test] above #[netns_test] expands first and refuses {what}; write #[test] below \
             #[netns_test], or leave it out (#[netns_test] makes the function a test)"
        ),
    ))
}

/// Whether a built-in `#[test]` is written among the attributes above the one at `call_site`
/// (this attribute), in the source file.
///
/// A `#[test]` above has already expanded when this attribute runs, and leaves no trace on the
/// item it hands on, so the source is the only place that shows it. Where the compiler gives
/// no file or position (Rust before 1.88, or an item built by a macro), the answer is `false`:
/// the function then gets its own `#[test]`, as without one above.
fn builtin_test_written_above(call_site: Span) -> bool {
    let Some(file) = call_site.local_file() else {
        return false;
    };
    let start = call_site.start();
    match std::fs::read_to_string(file) {
        Ok(source) => source::test_attribute_above(&source, start.line, start.column),
        Err(_) => false,
    }
}

/// `#[test]`, possibly written with its full prelude path (`::core::prelude::v1::test`).
fn is_builtin_test(path: &Path) -> bool {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [only] => only == "test",
        [root, prelude, .., last] => {
            matches!(root.as_str(), "core" | "std") && prelude == "prelude" && last == "test"
        }
        _ => false,
    }
}

/// Whether the function already carries the built-in test attribute, written below ours.
fn has_test_attribute(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| is_builtin_test(attr.path()))
}

fn generate(config: Config, func: ItemFn, test_above: bool) -> TokenStream2 {
    let krate = config.krate.clone().unwrap_or_else(|| syn::parse_quote!(::netns_test));
    let ItemFn { attrs, vis, sig, block } = func;
    let ident = &sig.ident;
    let name = ident.to_string();
    let test_attr = if test_above || has_test_attribute(&attrs) {
        TokenStream2::new()
    } else {
        quote! { #[::core::prelude::v1::test] }
    };
    let ret_ty = match &sig.output {
        ReturnType::Default => quote! { () },
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    let network = quote! { __netns_test_network };
    let binding = match sig.inputs.first() {
        Some(FnArg::Typed(arg)) => {
            let pat = &arg.pat;
            let ty = &arg.ty;
            quote_spanned! { arg.span() =>
                let #pat: #ty = #krate::__private::FromNetwork::from_network(#network);
            }
        }
        _ => TokenStream2::new(),
    };
    let stmts = &block.stmts;
    let body = if sig.asyncness.is_some() {
        quote! {
            #binding
            let __netns_test_future = async move { #(#stmts)* };
            let __netns_test_future: ::core::pin::Pin<
                &mut dyn ::core::future::Future<Output = #ret_ty>,
            > = ::core::pin::pin!(__netns_test_future);
            #krate::__private::block_on(__netns_test_future)
        }
    } else {
        quote! {
            #binding
            #(#stmts)*
        }
    };
    // The duration is read by the library's own grammar, in a constant beside the function
    // that the compiler evaluates even where `#[test]` leaves the function out (a build that
    // is not a test build): a bad value is one compile error pointing at the literal, and the
    // attribute accepts exactly what `NETNS_TEST_TIMEOUT` and topology files accept. The
    // function reads the value again at runtime, from the same call, then known to succeed.
    let (timeout_check, timeout) = match &config.timeout {
        Some(text) => {
            // Every token of the call at the literal, so that the error points there.
            let krate = respan(krate.to_token_stream(), text.span());
            let check = quote_spanned! { text.span() =>
                const _: ::core::time::Duration = #krate::__private::timeout(#text);
            };
            let value = quote_spanned! { text.span() =>
                ::core::option::Option::Some(#krate::__private::timeout(#text))
            };
            (check, value)
        }
        None => (TokenStream2::new(), quote! { ::core::option::Option::None }),
    };
    let topology = match &config.topology {
        None => quote! { #krate::__private::TopologySource::Default },
        Some((TopologyOption::Function(path), span)) => quote_spanned! { *span =>
            #krate::__private::TopologySource::from_fn(#path)
        },
        Some((TopologyOption::File(file), span)) => quote_spanned! { *span =>
            #krate::__private::TopologySource::File {
                path: #file,
                contents: ::core::include_str!(::core::concat!(
                    ::core::env!("CARGO_MANIFEST_DIR"), "/", #file
                )),
            }
        },
    };
    // A test on the default topology may be handed a network the fork server built ahead.
    let default_topology = config.topology.is_none();
    quote! {
        #timeout_check
        #(#attrs)*
        #test_attr
        #vis fn #ident() {
            // Run by the loader before `main`: in the child started for this test, the test
            // runs from here, without the harness (see `run_child_early`).
            #[used]
            #[unsafe(link_section = ".init_array")]
            static __NETNS_TEST_EARLY: extern "C" fn() = {
                extern "C" fn __netns_test_early() {
                    #krate::__private::run_child_early(::core::module_path!(), #name, #ident);
                }
                __netns_test_early
            };
            // Run before every unprioritised constructor (the one above included): the fork
            // server finds the test's body by name in this registry.
            #[used]
            #[unsafe(link_section = ".init_array.60000")]
            static __NETNS_TEST_REGISTER: extern "C" fn() = {
                static ENTRY: #krate::__private::Registration =
                    #krate::__private::Registration::new(
                        ::core::module_path!(), #name, #ident, #default_topology,
                    );
                extern "C" fn __netns_test_register() {
                    ENTRY.register();
                }
                __netns_test_register
            };
            #[allow(clippy::needless_return, clippy::let_unit_value, unused_braces)]
            let __netns_test_body = move |#network: &'static #krate::Network| -> #ret_ty {
                #body
            };
            #krate::__private::run_test(
                #krate::__private::TestSpec {
                    name: #krate::__private::test_name(::core::module_path!(), #name),
                    timeout: #timeout,
                    topology: #topology,
                    file: ::core::file!(),
                    line: ::core::line!(),
                },
                __netns_test_body,
            )
        }
    }
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream2, span: Span) -> TokenStream2 {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut inner = proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = proc_macro2::TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

mod source;
