#![doc = include_str!("../README.md")]

use proc_macro::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitInt, LitStr, Path, parse_macro_input};

/// Derives `Event` and `Versioned` for a type that is `Serialize` (see the crate docs).
///
/// ```ignore
/// #[derive(Serialize, Deserialize, esrc_core::Event)]
/// #[esrc(name = "Tab", version = 2)]
/// enum TabEvent { Opened { table: u32 } }
/// ```
#[proc_macro_derive(Event, attributes(esrc))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand_event(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

struct EventArgs {
    name: Option<LitStr>,
    version: Option<LitInt>,
    krate: Option<Path>,
}

fn parse_args(input: &DeriveInput) -> syn::Result<EventArgs> {
    let mut args = EventArgs {
        name: None,
        version: None,
        krate: None,
    };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("esrc")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let name: LitStr = meta.value()?.parse()?;
                if let Err(reason) = check_name(&name.value()) {
                    return Err(syn::Error::new(name.span(), reason));
                }
                args.name = Some(name);
            } else if meta.path.is_ident("version") {
                let version: LitInt = meta.value()?.parse()?;
                if version.base10_parse::<u32>()? == 0 {
                    return Err(syn::Error::new(
                        version.span(),
                        "schema versions start at 1: write `version = 1` or leave it out",
                    ));
                }
                args.version = Some(version);
            } else if meta.path.is_ident("crate") {
                let path: LitStr = meta.value()?.parse()?;
                args.krate = Some(path.parse()?);
            } else {
                return Err(
                    meta.error("unknown esrc attribute: expected `name`, `version` or `crate`")
                );
            }
            Ok(())
        })?;
    }
    Ok(args)
}

fn expand_event(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    if let syn::Data::Union(data) = &input.data {
        return Err(syn::Error::new(
            data.union_token.span,
            "Event cannot be derived for a union: use an enum or a struct",
        ));
    }
    let args = parse_args(input)?;
    let ident = &input.ident;
    let name = match args.name {
        Some(name) => name.value(),
        None => {
            let type_name = ident.to_string();
            let name = type_name
                .strip_suffix("Event")
                .filter(|rest| !rest.is_empty())
                .unwrap_or(&type_name)
                .to_owned();
            if let Err(reason) = check_name(&name) {
                return Err(syn::Error::new(
                    ident.span(),
                    format!("{reason}: set a valid name with #[esrc(name = \"...\")]"),
                ));
            }
            name
        }
    };
    let version = args
        .version
        .map_or_else(|| quote!(1), |version| quote!(#version));
    let krate = args
        .krate
        .map_or_else(|| quote!(::esrc_core), |path| quote!(#path));
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #krate::Versioned for #ident #type_generics #where_clause {
            const VERSION: u32 = #version;
        }
        impl #impl_generics #krate::Event for #ident #type_generics #where_clause {
            const NAME: &'static str = #name;
        }
    })
}

/// The same rule as `esrc_core::check_name`, checked at compile time.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("an event name cannot be empty")
    } else if name.len() > 128 {
        Err("an event name is at most 128 bytes long")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Err("an event name may contain only ASCII letters, digits, `_` and `-`")
    } else {
        Ok(())
    }
}
