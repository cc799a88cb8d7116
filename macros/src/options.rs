//! The attributes' `name = value` options: parsing, durations, and errors
//! that point at the offending token and say what to write instead.

use proc_macro2::Span;
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, MetaNameValue, Token};

/// One option as written: its name and value.
pub(crate) struct Opt {
    pub(crate) name: Ident,
    pub(crate) value: Expr,
}

/// Parses `a = 1, b = "x"` into options, refusing names not in `known`
/// (suggesting the nearest) and repeats.
pub(crate) fn parse(
    args: proc_macro2::TokenStream,
    attribute: &str,
    known: &[&str],
) -> syn::Result<Vec<Opt>> {
    let pairs = Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(args)?;
    let mut opts: Vec<Opt> = Vec::new();
    for pair in pairs {
        let Some(name) = pair.path.get_ident().cloned() else {
            return Err(syn::Error::new_spanned(
                &pair.path,
                format!(
                    "#[{attribute}] options are plain names: {}",
                    known.join(", ")
                ),
            ));
        };
        let written = name.to_string();
        if !known.contains(&written.as_str()) {
            let hint = match nearest(&written, known) {
                Some(near) => format!("did you mean `{near}`? "),
                None => String::new(),
            };
            return Err(syn::Error::new(
                name.span(),
                format!(
                    "unknown #[{attribute}] option `{written}`; {hint}the options are: {}",
                    known.join(", ")
                ),
            ));
        }
        if opts.iter().any(|opt| opt.name == name) {
            return Err(syn::Error::new(
                name.span(),
                format!("option `{written}` is given twice"),
            ));
        }
        opts.push(Opt {
            name,
            value: pair.value,
        });
    }
    Ok(opts)
}

/// The option called `name`, if given.
pub(crate) fn take<'a>(opts: &'a [Opt], name: &str) -> Option<&'a Opt> {
    opts.iter().find(|opt| opt.name == name)
}

/// A string literal option (`key`, `name`).
pub(crate) fn string(opt: &Opt) -> syn::Result<LitStr> {
    match &opt.value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            format!(
                "`{}` takes a string literal with `{{argument}}` placeholders, like \"user:{{id}}\"",
                opt.name
            ),
        )),
    }
}

/// A duration option: a human string (`"500ms"`, `"10s"`, `"5m"`, `"1h"`,
/// `"1d"`, or several: `"1m30s"`) checked now, or any `Duration` expression.
pub(crate) fn duration(opt: &Opt) -> syn::Result<proc_macro2::TokenStream> {
    let Expr::Lit(ExprLit {
        lit: Lit::Str(lit), ..
    }) = &opt.value
    else {
        let value = &opt.value;
        return Ok(quote!(#value));
    };
    let millis = parse_duration(&lit.value()).ok_or_else(|| {
        syn::Error::new(
            lit.span(),
            format!(
                "`{}`: cannot read {:?} as a duration; write a number and a unit, \
                 like \"500ms\", \"10s\", \"5m\", \"1h\" or \"1m30s\", or a `Duration` expression",
                opt.name,
                lit.value()
            ),
        )
    })?;
    if millis == 0 {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{}` must be longer than zero", opt.name),
        ));
    }
    Ok(quote!(::std::time::Duration::from_millis(#millis)))
}

/// `"1m30s"` → 90,000 ms. Units: ms, s, m, h, d. `None` when malformed or
/// too long for a `u64` of milliseconds.
pub(crate) fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let per_unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(per_unit)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// The known name closest to `written`, when it is close enough to be a
/// typo (about a third of its letters wrong, a swap counting as two).
fn nearest<'a>(written: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|name| (edit_distance(written, name), *name))
        .filter(|(distance, name)| *distance <= name.len().div_ceil(3))
        .min()
        .map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// An error for a missing required option, at the attribute.
pub(crate) fn missing(attribute: &str, name: &str, example: &str) -> syn::Error {
    syn::Error::new(
        Span::call_site(),
        format!("#[{attribute}] needs `{name}`, like #[{attribute}({example})]"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("10s"), Some(10_000));
        assert_eq!(parse_duration("5m"), Some(300_000));
        assert_eq!(parse_duration("1h"), Some(3_600_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000));
        for bad in ["", "10", "s", "10x", "1.5s", "-1s", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn typos_get_the_nearest_option() {
        let known = ["cache", "key", "ttl", "lease", "early_refresh"];
        assert_eq!(nearest("leese", &known), Some("lease"));
        assert_eq!(nearest("early_refrsh", &known), Some("early_refresh"));
        assert_eq!(nearest("colour", &known), None);
        assert_eq!(
            nearest("wiat", &["cache", "name", "lease", "wait"]),
            Some("wait")
        );
    }
}
