#![doc = include_str!("../README.md")]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, LitStr, Token};

/// Marks a test `#[ignore = "<why>"]` when a server it needs is not configured at build
/// time. The documentation is on the re-export, `esrc_conformance::requires`.
#[proc_macro_attribute]
pub fn requires(args: TokenStream, item: TokenStream) -> TokenStream {
    let requirements = syn::parse_macro_input!(args as Requirements);
    let item = proc_macro2::TokenStream::from(item);

    // Every variable consulted is read again through `option_env!` in the test crate, so
    // that rustc records it in the crate's dep-info and cargo rebuilds the test when it
    // changes.
    let mut consulted = vec![REQUIRED.to_owned(), "DOCKER_HOST".to_owned()];
    let mut missing = Vec::new();
    for requirement in &requirements.0 {
        consulted.push(requirement.variable.clone());
        if !requirement.holds() {
            missing.push(requirement.describe());
        }
    }
    let track = quote! {
        const _: () = { #( let _ = ::core::option_env!(#consulted); )* };
    };
    if missing.is_empty() || std::env::var(REQUIRED).is_ok_and(|value| value == "1") {
        return quote! { #item #track }.into();
    }
    let why = format!(
        "needs {} (decided when the test was built; `-- --include-ignored` runs it anyway)",
        missing.join(", and ")
    );
    quote! { #[ignore = #why] #item #track }.into()
}

/// Set to `1`, a missing server fails the test instead of skipping it.
const REQUIRED: &str = "ESRC_REQUIRE_BACKENDS";

struct Requirements(Vec<Requirement>);

/// An environment variable that must be set, or else (where `docker`) a Docker daemon
/// that answers, for testcontainers.
struct Requirement {
    variable: String,
    docker: bool,
}

impl Requirement {
    fn holds(&self) -> bool {
        std::env::var_os(&self.variable).is_some() || (self.docker && docker_answers())
    }

    fn describe(&self) -> String {
        if self.docker {
            format!("{} or a Docker daemon", self.variable)
        } else {
            self.variable.clone()
        }
    }
}

impl Parse for Requirements {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let items = Punctuated::<Requirement, Token![,]>::parse_terminated(input)?;
        if items.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "name what the test needs: postgres, nats, nats_server, nats_cluster or env = \"VAR\"",
            ));
        }
        Ok(Self(items.into_iter().collect()))
    }
}

impl Parse for Requirement {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        if name == "env" {
            input.parse::<Token![=]>()?;
            let variable: LitStr = input.parse()?;
            return Ok(Self {
                variable: variable.value(),
                docker: false,
            });
        }
        let (variable, docker) = match name.to_string().as_str() {
            "postgres" => ("ESRC_POSTGRES_URL", true),
            "nats" => ("ESRC_NATS_URL", true),
            "nats_server" => ("ESRC_NATS_SERVER", false),
            "nats_cluster" => ("ESRC_NATS_CLUSTER_URL", false),
            _ => {
                return Err(syn::Error::new(
                    name.span(),
                    "expected postgres, nats, nats_server, nats_cluster or env = \"VAR\"",
                ));
            }
        };
        Ok(Self {
            variable: variable.to_owned(),
            docker,
        })
    }
}

/// Whether a Docker daemon accepts connections where testcontainers looks for one:
/// `DOCKER_HOST` (`unix://` or `tcp://`), else the usual sockets.
fn docker_answers() -> bool {
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;

    if let Ok(host) = std::env::var("DOCKER_HOST") {
        if let Some(address) = host.strip_prefix("tcp://") {
            return address.to_socket_addrs().is_ok_and(|mut addresses| {
                addresses.any(|address| {
                    TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
                })
            });
        }
        if let Some(path) = host.strip_prefix("unix://") {
            return unix_socket_answers(path);
        }
        return false;
    }
    let mut sockets = vec!["/var/run/docker.sock".to_owned()];
    if let Ok(runtime) = std::env::var("XDG_RUNTIME_DIR") {
        sockets.push(format!("{runtime}/docker.sock"));
    }
    if let Ok(home) = std::env::var("HOME") {
        sockets.push(format!("{home}/.docker/run/docker.sock"));
    }
    sockets.iter().any(|socket| unix_socket_answers(socket))
}

#[cfg(unix)]
fn unix_socket_answers(path: &str) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

#[cfg(not(unix))]
fn unix_socket_answers(_path: &str) -> bool {
    false
}
