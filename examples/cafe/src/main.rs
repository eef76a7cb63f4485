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
    /// The day's tabs, in the order they were opened.
    tabs: Vec<Root<Tab>>,
}

impl Staff<'_> {
    /// [`Staff::tell`] on the day's tab number `tab`, opening it (a new aggregate) when
    /// it is the next one.
    async fn tell_tab(
        &mut self,
        tab: usize,
        who: &str,
        command: TabCommand,
    ) -> Result<(), BoxError> {
        if tab == self.tabs.len() {
            self.tabs.push(Root::new(Uuid::now_v7()));
        }
        let Some(slot) = self.tabs.get_mut(tab) else {
            return Err(format!("the script names tab {tab} before it is opened").into());
        };
        let root = std::mem::replace(slot, Root::new(Uuid::nil()));
        let root = self.tell(root, who, command).await?;
        self.tabs[tab] = root;
        Ok(())
    }

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
        let mut root = root;
        self.store.write(&mut root, events).await?;
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
    let open_tabs = Projector::new(store.clone(), OpenTabs::NAME, open_tabs)
        .checkpoint_every(10)
        .spawn();
    let chef = Projector::new(store.clone(), ChefTodoList::NAME, chef).spawn();

    println!("\nThe day (commands in, events out):");
    println!("  Who   Table  Command           Events");
    let mut staff = Staff {
        store: &store,
        last: Position::ZERO,
        tabs: Vec::new(),
    };
    for (tab, who, command) in script(&taken) {
        staff.tell_tab(tab, who, command).await?;
    }

    caught_up(&open_tabs).await?;
    caught_up(&chef).await?;
    let lag = open_tabs.lag().await?;
    let open_tabs = open_tabs.stop().await?;
    let chef = chef.stop().await?;
    print_open_tabs(&open_tabs);
    print_chef(&chef);
    println!(
        "\nBoth projectors stopped and saved their checkpoints (lag before stopping: {lag} events). \
         Events are in the `{}` category.",
        cafe::TabEvent::NAME
    );
    Ok(())
}

/// The day's commands, in order: which of the day's tabs (0 for the first opened, 1 for
/// the second…), who gives the command, and the command. The tabs sit at free tables
/// (tables taken by tabs still open from an earlier run are skipped).
fn script(taken: &BTreeSet<u32>) -> Vec<(usize, &'static str, TabCommand)> {
    let mut free = (1..).filter(|table| !taken.contains(table));
    let mut open = |waiter: &str| TabCommand::OpenTab {
        table_number: free.next().unwrap_or_default(),
        waiter: waiter.to_owned(),
    };
    let order = |items| TabCommand::PlaceOrder { items };
    let drinks_served = |menu_numbers| TabCommand::MarkDrinksServed { menu_numbers };
    let food_prepared = |menu_numbers| TabCommand::MarkFoodPrepared { menu_numbers };
    let food_served = |menu_numbers| TabCommand::MarkFoodServed { menu_numbers };
    let close = |amount_paid| TabCommand::CloseTab { amount_paid };
    let (ann, ben) = (ANN, BEN);
    vec![
        (0, ann, open(ann)),
        (0, ann, order(vec![coke(), coke(), burger()])),
        (1, ben, open(ben)),
        (1, ben, order(vec![water(), soup(), soup()])),
        (0, ann, drinks_served(vec![1, 1])),
        (0, "Chef", food_prepared(vec![10])),
        (0, ann, food_served(vec![10])),
        (0, ann, close(1_500)),
        (0, ann, close(2_000)),
        (1, ben, drinks_served(vec![2])),
        (1, ben, food_served(vec![11])),
        (1, "Chef", food_prepared(vec![11])),
        (1, ben, close(2_000)),
        (2, ann, open(ann)),
        (2, ann, order(vec![coffee(), cake()])),
        (0, ann, order(vec![coke()])),
    ]
}

/// The waiters of the day.
const ANN: &str = "Ann";
const BEN: &str = "Ben";

/// `items` as counted lines (`2 × Coke`), or `-`.
fn counted(items: &[MenuItem]) -> String {
    let lines: Vec<String> = lines(items).iter().map(ToString::to_string).collect();
    if lines.is_empty() {
        "-".to_owned()
    } else {
        lines.join(", ")
    }
}

/// The tutorial's queries on the open tabs: the tabs, the invoices, the waiters' to-do
/// lists.
fn print_open_tabs(open_tabs: &ReadModelProjection<AnyStore, OpenTabs>) {
    let tabs = &open_tabs.kept().model;
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
    print_invoices(tabs);
    let rows: Vec<Vec<String>> = [ANN, BEN]
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
}

/// The invoice of every open tab (InvoiceForTable).
fn print_invoices(tabs: &OpenTabs) {
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
}

/// The chef's to-do list.
fn print_chef(chef: &ReadModelProjection<AnyStore, ChefTodoList>) {
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
