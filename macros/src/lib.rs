//! `#[cached]` and `#[synchronized]`: the `stampede` crate's stampede guard
//! and exclusive lock as function attributes. Use them through `stampede`
//! (its default `macros` feature), where they are documented:
//! `stampede::cached`, `stampede::synchronized`.

mod function;
mod options;

use proc_macro::TokenStream;
use quote::quote;
use syn::ItemFn;

use options::{duration, missing, string, take};

const CACHED: &[&str] = &[
    "cache",
    "key",
    "ttl",
    "lease",
    "early_refresh",
    "stale_while_revalidate",
];

const SYNCHRONIZED: &[&str] = &["cache", "name", "lease", "wait", "auto_renew"];

/// `#[cached]`: `get_or_fill` as a function attribute (expanded by `stampede-macros`).
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, cached_body)
}

/// `#[synchronized]`: `RedLock::synchronized` as a function attribute (expanded by `stampede-macros`).
#[proc_macro_attribute]
pub fn synchronized(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, synchronized_body)
}

type Body = fn(proc_macro2::TokenStream, &ItemFn) -> syn::Result<proc_macro2::TokenStream>;

/// Parses the function, builds its new body, and keeps everything else
/// (attributes, docs, visibility, signature) as written.
/// On a mistake, the error comes with the function as written, so that the
/// error is the only one (no "cannot find function" or unused imports).
fn expand(args: TokenStream, item: TokenStream, body: Body) -> TokenStream {
    let function = match syn::parse::<ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(error) => {
            let item = proc_macro2::TokenStream::from(item);
            return quote!(#item)
                .into_iter()
                .chain(error.to_compile_error())
                .collect::<proc_macro2::TokenStream>()
                .into();
        }
    };
    match body(args.into(), &function) {
        Ok(block) => {
            let ItemFn {
                attrs, vis, sig, ..
            } = &function;
            quote!(#(#attrs)* #vis #sig { #block }).into()
        }
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #[allow(unused)] #function).into()
        }
    }
}

fn cached_body(
    args: proc_macro2::TokenStream,
    function: &ItemFn,
) -> syn::Result<proc_macro2::TokenStream> {
    let opts = options::parse(args, "cached", CACHED)?;
    function::check(function, "cached")?;
    let cache = &take(&opts, "cache")
        .ok_or_else(|| missing("cached", "cache", "cache = &CACHE, ttl = \"5m\""))?
        .value;
    let template = take(&opts, "key").map(string).transpose()?;
    let key = function::key(function, template.as_ref(), "key")?;
    let mut fill = match take(&opts, "ttl") {
        Some(ttl) => {
            let ttl = duration(ttl)?;
            quote!(::stampede::Fill::ttl(#ttl))
        }
        None => quote!(::stampede::Fill::forever()),
    };
    if let Some(lease) = take(&opts, "lease") {
        let lease = duration(lease)?;
        fill = quote!(#fill.lease(#lease));
    }
    if let Some(beta) = take(&opts, "early_refresh") {
        let beta = &beta.value;
        fill = quote!(#fill.early_refresh(#beta));
    }
    if let Some(window) = take(&opts, "stale_while_revalidate") {
        let window = duration(window)?;
        fill = quote!(#fill.stale_while_revalidate(#window));
    }
    let block = &function.block;
    Ok(quote! {
        let __stampede_key: ::std::string::String = #key;
        (#cache)
            .get_or_fill(&__stampede_key, #fill, move || async move #block)
            .await
    })
}

fn synchronized_body(
    args: proc_macro2::TokenStream,
    function: &ItemFn,
) -> syn::Result<proc_macro2::TokenStream> {
    let opts = options::parse(args, "synchronized", SYNCHRONIZED)?;
    function::check(function, "synchronized")?;
    let cache = &take(&opts, "cache")
        .ok_or_else(|| {
            missing(
                "synchronized",
                "cache",
                "cache = &CACHE, name = \"job:{id}\"",
            )
        })?
        .value;
    let template = take(&opts, "name").map(string).transpose()?;
    let name = function::key(function, template.as_ref(), "name")?;
    let lease = match take(&opts, "lease") {
        Some(lease) => duration(lease)?,
        None => quote!(::stampede::DEFAULT_SYNCHRONIZED_LEASE),
    };
    let mut lock = quote!(::stampede::RedLock::new(::stampede::__private::as_cache(#cache), __stampede_name, #lease));
    let renew = take(&opts, "auto_renew").map_or_else(
        || quote!(true),
        |opt| {
            let value = &opt.value;
            quote!(#value)
        },
    );
    lock = quote!(#lock.auto_renew(#renew));
    if let Some(wait) = take(&opts, "wait") {
        let wait = duration(wait)?;
        lock = quote!(#lock.wait_timeout(#wait));
    }
    let block = &function.block;
    Ok(quote! {
        let __stampede_name: ::std::string::String = #name;
        match #lock.synchronized(move || async move #block).await {
            ::std::result::Result::Ok(__stampede_output) => __stampede_output,
            ::std::result::Result::Err(__stampede_error) => {
                ::std::result::Result::Err(::std::convert::From::from(__stampede_error))
            }
        }
    })
}
