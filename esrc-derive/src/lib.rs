#![doc = include_str!("../README.md")]

mod attrs;
mod event;
mod group;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `Event` (and `Versioned`) for a `Serialize` type. See the crate docs.
#[proc_macro_derive(Event, attributes(esrc))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::expand(&input, true)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `Versioned` alone, for aggregate state stored in snapshots. See the crate docs.
#[proc_macro_derive(Versioned, attributes(esrc))]
pub fn derive_versioned(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::expand(&input, false)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `EventGroup` and `DecodeGroup` for an enum whose variants each hold one event
/// type. See the crate docs.
#[proc_macro_derive(EventGroup, attributes(esrc))]
pub fn derive_event_group(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    group::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
