//! A short day at the cafe: tabs are opened, orders placed, served and paid, and the
//! read models are printed. Run it again on a persistent store and the read models
//! resume from their checkpoints.

use std::collections::BTreeSet;
use std::time::Duration;

use cafe::{
    ChefTodoList, MenuItem, OpenTabs, ReadModel, ReadModelProjection, Tab, TabCommand, euros, lines,
};
use esrc::projector::{Projector, ProjectorHandle};
use esrc::{Aggregate, AnyStore, CheckpointStore, Event, Position, PublishExt, Root};
use esrc_examples_support::{BoxError, open, print_table, report, store_arg};
use uuid::Uuid;

const USAGE: &str = "\
A day at the cafe of the cqrs.nu tutorial, on esrc.

Usage: cafe [--store STORE]

STORE is `memory` (the default), a postgres:// URL or a nats:// URL.
On PostgreSQL or NATS, run it twice: the read models resume from their checkpoints.";

fn item(menu_number: u32, description: &str, is_drink: bool, price: u64) -> MenuItem {
    MenuItem {
        menu_number,
        description: description.to_owned(),
        is_drink,
        price,
    }
}

fn coke() -> MenuItem {
    item(1, "Coke", true, 250)
}
fn water() -> MenuItem {
    item(2, "Water", true, 150)
}
fn coffee() -> MenuItem {
    item(3, "Coffee", true, 300)
}
fn burger() -> MenuItem {
    item(10, "Burger", false, 1_150)
}
fn soup() -> MenuItem {
    item(11, "Soup", false, 700)
}
fn cake() -> MenuItem {
    item(12, "Cake", false, 450)
}

/// Runs commands against tabs, printing each outcome.
struct Staff<'a> {
    store: &'a AnyStore,
    last: Position,
}

impl Staff<'_> {
    /// Processes `command` on `root` (the aggregate decides), then appends the events
    /// (the store checks that nobody changed the tab meanwhile).
    async fn tell(
        &mut self,
        root: Root<Tab>,
        who: &str,
        command: TabCommand,
    ) -> Result<Root<Tab>, BoxError> {
        let label = format!("{command:?}");
        let label = label
            .split([' ', '{', '('])
            .next()
            .unwrap_or_default()
            .to_owned();
        let table = root.table_number();
        let events = match root.process(command) {
            Ok(events) => events,
            Err(error) => {
                println!("  {who:<5} {table:>5}  {label:<17} refused: {error}");
                return Ok(root);
            }
        };
        let names: Vec<&str> = events.iter().map(|event| event.variant()).collect();
        let root = self.store.write(root, events).await?;
        self.last = self.last.max(root.position());
        println!(
            "  {who:<5} {:>5}  {label:<17} {} (version {})",
            root.table_number(),
            names.join(", "),
            root.version()
        );
        Ok(root)
    }
}

/// Waits until the projector has read every event stored so far.
async fn caught_up<M: ReadModel>(
    handle: &ProjectorHandle<AnyStore, ReadModelProjection<AnyStore, M>, esrc::Error>,
) -> Result<(), BoxError> {
    match tokio::time::timeout(Duration::from_secs(30), handle.caught_up()).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(format!("the {} projector stopped early", M::NAME).into()),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(format!("the {} projector did not catch up", M::NAME).into()),
    }
}

/// The day, on `store` (called `kind` in the output).
async fn day(store: AnyStore, kind: &str) -> Result<(), BoxError> {
    println!("A day at the cafe, on the {kind} store.");
    let open_tabs = ReadModelProjection::<AnyStore, OpenTabs>::load(store.clone()).await?;
    let chef = ReadModelProjection::<AnyStore, ChefTodoList>::load(store.clone()).await?;
    for name in [OpenTabs::NAME, ChefTodoList::NAME] {
        match store.load_checkpoint(name).await? {
            Some(position) => {
                println!("  {name}: resuming after its checkpoint at position {position}")
            }
            None => println!("  {name}: no checkpoint yet, starting from the first event"),
        }
    }
    let taken: BTreeSet<u32> = open_tabs
        .kept()
        .model
        .tabs
        .values()
        .map(|tab| tab.table_number)
        .collect();
    let mut free = (1..).filter(|table| !taken.contains(table));
    let mut table = || free.next().unwrap_or_default();
    let open_tabs = Projector::new(store.clone(), OpenTabs::NAME, open_tabs)
        .checkpoint_every(10)
        .spawn();
    let chef = Projector::new(store.clone(), ChefTodoList::NAME, chef).spawn();

    println!("\nThe day (commands in, events out):");
    println!("  Who   Table  Command           Events");
    let mut staff = Staff {
        store: &store,
        last: Position::ZERO,
    };
    let (ann, ben) = ("Ann", "Ben");
    let open = |table_number: u32, waiter: &str| TabCommand::OpenTab {
        table_number,
        waiter: waiter.to_owned(),
    };

    let first = staff
        .tell(Root::new(Uuid::now_v7()), ann, open(table(), ann))
        .await?;
    let first = staff
        .tell(
            first,
            ann,
            TabCommand::PlaceOrder {
                items: vec![coke(), coke(), burger()],
            },
        )
        .await?;
    let second = staff
        .tell(Root::new(Uuid::now_v7()), ben, open(table(), ben))
        .await?;
    let second = staff
        .tell(
            second,
            ben,
            TabCommand::PlaceOrder {
                items: vec![water(), soup(), soup()],
            },
        )
        .await?;
    let first = staff
        .tell(
            first,
            ann,
            TabCommand::MarkDrinksServed {
                menu_numbers: vec![1, 1],
            },
        )
        .await?;
    let first = staff
        .tell(
            first,
            "Chef",
            TabCommand::MarkFoodPrepared {
                menu_numbers: vec![10],
            },
        )
        .await?;
    let first = staff
        .tell(
            first,
            ann,
            TabCommand::MarkFoodServed {
                menu_numbers: vec![10],
            },
        )
        .await?;
    let first = staff
        .tell(first, ann, TabCommand::CloseTab { amount_paid: 1_500 })
        .await?;
    let first = staff
        .tell(first, ann, TabCommand::CloseTab { amount_paid: 2_000 })
        .await?;
    let second = staff
        .tell(
            second,
            ben,
            TabCommand::MarkDrinksServed {
                menu_numbers: vec![2],
            },
        )
        .await?;
    let second = staff
        .tell(
            second,
            ben,
            TabCommand::MarkFoodServed {
                menu_numbers: vec![11],
            },
        )
        .await?;
    let second = staff
        .tell(
            second,
            "Chef",
            TabCommand::MarkFoodPrepared {
                menu_numbers: vec![11],
            },
        )
        .await?;
    let second = staff
        .tell(second, ben, TabCommand::CloseTab { amount_paid: 2_000 })
        .await?;
    let third = staff
        .tell(Root::new(Uuid::now_v7()), ann, open(table(), ann))
        .await?;
    let third = staff
        .tell(
            third,
            ann,
            TabCommand::PlaceOrder {
                items: vec![coffee(), cake()],
            },
        )
        .await?;
    staff
        .tell(
            first,
            ann,
            TabCommand::PlaceOrder {
                items: vec![coke()],
            },
        )
        .await?;
    let _ = (second, third);

    caught_up(&open_tabs).await?;
    caught_up(&chef).await?;
    let lag = open_tabs.lag().await?;
    let open_tabs = open_tabs.stop().await?;
    let chef = chef.stop().await?;

    // The tutorial's queries on the open tabs.
    let tabs = &open_tabs.kept().model;
    let counted = |items: &[MenuItem]| {
        let lines: Vec<String> = lines(items).iter().map(ToString::to_string).collect();
        if lines.is_empty() {
            "-".to_owned()
        } else {
            lines.join(", ")
        }
    };
    let rows: Vec<Vec<String>> = tabs
        .active_table_numbers()
        .into_iter()
        .filter_map(|table| tabs.tab_for_table(table))
        .map(|tab| {
            vec![
                tab.table_number.to_string(),
                tab.waiter.clone(),
                counted(&tab.to_serve),
                counted(&tab.in_preparation),
                counted(&tab.served),
            ]
        })
        .collect();
    print_table(
        &format!(
            "Open tabs (read model `{}`, at position {})",
            OpenTabs::NAME,
            open_tabs.kept().position
        ),
        &["Table", "Waiter", "To serve", "In preparation", "Served"],
        &rows,
    );
    let rows: Vec<Vec<String>> = tabs
        .active_table_numbers()
        .into_iter()
        .filter_map(|table| tabs.invoice_for_table(table))
        .map(|invoice| {
            let items: Vec<String> = invoice
                .items
                .iter()
                .map(|line| format!("{line} {}", euros(line.total())))
                .collect();
            vec![
                invoice.table_number.to_string(),
                if items.is_empty() {
                    "-".to_owned()
                } else {
                    items.join(", ")
                },
                euros(invoice.total),
                if invoice.has_unserved_items {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
            ]
        })
        .collect();
    print_table(
        "Invoices (InvoiceForTable)",
        &["Table", "Served", "Total", "Unserved items"],
        &rows,
    );
    let rows: Vec<Vec<String>> = [ann, ben]
        .into_iter()
        .flat_map(|waiter| {
            tabs.todo_list_for_waiter(waiter)
                .into_iter()
                .map(move |(table, lines)| {
                    let lines: Vec<String> = lines.iter().map(ToString::to_string).collect();
                    vec![waiter.to_owned(), table.to_string(), lines.join(", ")]
                })
        })
        .collect();
    print_table(
        "The waiters' to-do lists (TodoListForWaiter)",
        &["Waiter", "Table", "To bring"],
        &rows,
    );
    let rows: Vec<Vec<String>> = chef
        .kept()
        .model
        .todo
        .values()
        .map(|dish| vec![dish.table_number.to_string(), counted(&dish.items)])
        .collect();
    print_table(
        &format!(
            "Chef's todo list (read model `{}`, at position {})",
            ChefTodoList::NAME,
            chef.kept().position
        ),
        &["Table", "Dishes"],
        &rows,
    );
    println!(
        "\nBoth projectors stopped and saved their checkpoints (lag before stopping: {lag} events). \
         Events are in the `{}` category.",
        cafe::TabEvent::NAME
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    report(run().await)
}

async fn run() -> Result<(), BoxError> {
    let url = store_arg(USAGE)?;
    let (store, kind) = open(url.as_deref(), "cafe").await?;
    day(store, kind).await
}
