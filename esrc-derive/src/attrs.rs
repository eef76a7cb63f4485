//! Parsing `#[esrc(...)]` attributes, with errors that point at the offending tokens.

use proc_macro2::Span;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Attribute, LitInt, LitStr, Path, Type};

/// The attributes a type may carry.
#[derive(Default)]
pub(crate) struct TypeArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<(u32, Span)>,
    pub(crate) previous: Option<Type>,
    pub(crate) krate: Option<Path>,
}

impl TypeArgs {
    pub(crate) fn parse(attrs: &[Attribute], allow_name: bool) -> syn::Result<Self> {
        let mut args = TypeArgs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("esrc")) {
            attr.parse_nested_meta(|meta| {
                let duplicate = |what: &str| {
                    meta.error(format!("`{what}` is given twice: keep one"))
                };
                if meta.path.is_ident("name") {
                    if !allow_name {
                        return Err(meta.error(
                            "`name` applies to events; snapshot state is named by its aggregate's event",
                        ));
                    }
                    if args.name.is_some() {
                        return Err(duplicate("name"));
                    }
                    let name: LitStr = meta.value()?.parse()?;
                    if let Err(reason) = check_name(&name.value()) {
                        return Err(syn::Error::new(
                            name.span(),
                            format!("{reason}; for example write `#[esrc(name = \"Tab\")]`"),
                        ));
                    }
                    args.name = Some(name);
                } else if meta.path.is_ident("version") {
                    if args.version.is_some() {
                        return Err(duplicate("version"));
                    }
                    let version: LitInt = meta.value()?.parse()?;
                    let number = version.base10_parse::<u32>()?;
                    if number == 0 {
                        return Err(syn::Error::new(
                            version.span(),
                            "schema versions start at 1: write `version = 1` or leave it out",
                        ));
                    }
                    args.version = Some((number, version.span()));
                } else if meta.path.is_ident("previous") {
                    if args.previous.is_some() {
                        return Err(duplicate("previous"));
                    }
                    args.previous = Some(meta.value()?.parse()?);
                } else if meta.path.is_ident("crate") {
                    if args.krate.is_some() {
                        return Err(duplicate("crate"));
                    }
                    let path: LitStr = meta.value()?.parse()?;
                    args.krate = Some(path.parse()?);
                } else if meta.path.is_ident("ignore") {
                    return Err(meta.error("`ignore` goes on a variant of an EventGroup, not on a type"));
                } else {
                    let expected = if allow_name {
                        "`name`, `version`, `previous` or `crate`"
                    } else {
                        "`version`, `previous` or `crate`"
                    };
                    return Err(meta.error(format!("unknown esrc attribute: expected {expected}")));
                }
                Ok(())
            })?;
        }
        if let Some(previous) = &args.previous {
            match args.version {
                None => {
                    return Err(syn::Error::new(
                        previous.span(),
                        "`previous` needs this type's own version above the previous one's: add `version = 2` (or higher)",
                    ));
                }
                Some((1, span)) => {
                    return Err(syn::Error::new(
                        span,
                        "a type with a `previous` version cannot be version 1: use `version = 2` or higher",
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(args)
    }

    pub(crate) fn krate(&self) -> proc_macro2::TokenStream {
        self.krate
            .as_ref()
            .map_or_else(|| quote!(::esrc_core), |path| quote!(#path))
    }
}

/// Only `#[esrc(ignore)]` on group variants.
pub(crate) fn variant_ignored(attrs: &[Attribute]) -> syn::Result<bool> {
    let mut ignored = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("esrc")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("ignore") {
                ignored = true;
                Ok(())
            } else {
                Err(meta
                    .error("unknown esrc attribute on a variant: only `ignore` is allowed here"))
            }
        })?;
    }
    Ok(ignored)
}

/// The rule every esrc name follows (`esrc_name::check`, the one esrc-core applies at run
/// time), worded for an event's name.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    esrc_name::check(name).map_err(|invalid| match invalid {
        esrc_name::Invalid::Empty => "an event name cannot be empty",
        esrc_name::Invalid::TooLong => "an event name is at most 128 bytes long",
        _ => "an event name may contain only ASCII letters, digits, `_` and `-`",
    })
}
