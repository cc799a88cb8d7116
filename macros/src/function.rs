//! What the attributes need from the function they decorate: that it is
//! `async` and returns a `Result`, its argument names, and the key (or lock
//! name) built from them.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{FnArg, Ident, ItemFn, LitStr, Pat, ReturnType, Type};

/// Refuses a function the attribute cannot wrap, pointing at the reason.
pub(crate) fn check(function: &ItemFn, attribute: &str) -> syn::Result<()> {
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            format!(
                "#[{attribute}] goes on an `async fn`; write `async fn {}`",
                sig.ident
            ),
        ));
    }
    let returns_result = match &sig.output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    };
    if !returns_result {
        let message = format!(
            "#[{attribute}] needs the function to return `Result<T, E>` with \
             `E: From<stampede::Error>`, so that the cache's errors have somewhere to go"
        );
        return Err(match &sig.output {
            ReturnType::Type(_, ty) => syn::Error::new_spanned(ty, message),
            ReturnType::Default => syn::Error::new_spanned(&sig.ident, message),
        });
    }
    Ok(())
}

/// The names of the function's arguments (not `self`), in order. An
/// argument that is a pattern rather than a name has none.
pub(crate) fn argument_names(function: &ItemFn) -> Vec<Option<Ident>> {
    function
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Receiver(_) => None,
            FnArg::Typed(typed) => Some(match &*typed.pat {
                Pat::Ident(pat) => Some(pat.ident.clone()),
                _ => None,
            }),
        })
        .collect()
}

/// The key (or lock name) as a `String` expression: `template` formatted
/// over the arguments, or, without one, the function's module path and
/// name followed by every argument's `Display`.
pub(crate) fn key(
    function: &ItemFn,
    template: Option<&LitStr>,
    option: &str,
) -> syn::Result<TokenStream> {
    let names = argument_names(function);
    if let Some(template) = template {
        for placeholder in placeholders(template)? {
            let known = names.iter().flatten().any(|name| *name == placeholder);
            if !known {
                let list: Vec<String> = names.iter().flatten().map(ToString::to_string).collect();
                return Err(syn::Error::new(
                    template.span(),
                    format!(
                        "`{{{placeholder}}}` in `{option}` is not an argument of `{}`; \
                         the arguments are: {}",
                        function.sig.ident,
                        if list.is_empty() {
                            "none".to_owned()
                        } else {
                            list.join(", ")
                        }
                    ),
                ));
            }
        }
        return Ok(quote_spanned!(template.span()=> ::std::format!(#template)));
    }
    let mut format = format!("{{}}::{}", function.sig.ident);
    let mut values = Vec::new();
    for name in &names {
        let Some(name) = name else {
            return Err(syn::Error::new_spanned(
                &function.sig.inputs,
                format!("an argument that is a pattern has no name to build the key from; give `{option}`"),
            ));
        };
        format.push_str(":{}");
        values.push(name.clone());
    }
    Ok(quote!(
        ::std::format!(#format, ::std::module_path!() #(, #values)*)
    ))
}

/// The argument names a format string uses: `{id}`, `{id:>4}`; `{{` and
/// `}}` are literal braces. Positional (`{}`, `{0}`) and expression
/// placeholders are refused: the key must say which argument it uses.
fn placeholders(template: &LitStr) -> syn::Result<Vec<String>> {
    let text = template.value();
    let mut names = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, ch)) = chars.next() {
        match ch {
            '{' if chars.peek().is_some_and(|(_, next)| *next == '{') => {
                chars.next();
            }
            '{' => {
                let end = text[at..].find('}').map(|end| at + end).ok_or_else(|| {
                    syn::Error::new(template.span(), "an unclosed `{` (write `{{` for a brace)")
                })?;
                let inside = &text[at + 1..end];
                let name = inside.split(':').next().unwrap_or_default();
                let is_name = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                if !is_name {
                    return Err(syn::Error::new(
                        template.span(),
                        format!(
                            "`{{{inside}}}`: name the argument in each placeholder, like `{{id}}`"
                        ),
                    ));
                }
                names.push(name.to_owned());
                while chars.next_if(|(next_at, _)| *next_at <= end).is_some() {}
            }
            _ => {}
        }
    }
    Ok(names)
}
