//! Courses and students on any store that offers decisions across streams: students race
//! for the seats of a course, a student hits the course limit, a course is renamed.
//! Every run uses fresh ids, so it can run again on a persistent store.

use courses::{
    CourseState, MAX_COURSES, Refused, StudentState, define_course, enrol_student, rename_course,
};
use esrc::{AnyStore, CommandError, DecideExt};
use esrc_examples_support::{BoxError, open, print_table, report, store_arg};

const USAGE: &str = "\
Courses and students (the Dynamic Consistency Boundary's example), on esrc.

Usage: courses [--store STORE]

STORE is `memory` (the default), a postgres:// URL or a nats:// URL.";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    report(run().await)
}

/// What a decision's outcome says, for the table.
fn said(outcome: &Result<Vec<esrc::Appended>, CommandError<Refused>>) -> String {
    match outcome {
        Ok(_) => "done".to_owned(),
        Err(CommandError::Rejected(refused)) => format!("refused: {refused}"),
        Err(error) => format!("failed: {error}"),
    }
}

/// Twelve students race for maths's five seats, all at once: five get one.
async fn race_for_seats(
    store: &AnyStore,
    id: &impl Fn(&str) -> String,
    log: &mut Vec<Vec<String>>,
) -> Result<(), BoxError> {
    let racers: Vec<_> = (1..=12)
        .map(|n| {
            let (store, course, student) = (store.clone(), id("maths"), id(&format!("s{n}")));
            tokio::spawn(async move {
                let outcome = enrol_student(&store, &course, &student).await;
                (student, outcome)
            })
        })
        .collect();
    let (mut seated, mut full) = (0, 0);
    for racer in racers {
        let (student, outcome) = racer.await?;
        match &outcome {
            Ok(_) => seated += 1,
            Err(CommandError::Rejected(Refused::CourseFull(_))) => full += 1,
            Err(_) => {}
        }
        log.push(vec![format!("enrol {student} into maths"), said(&outcome)]);
    }
    if (seated, full) != (5, 7) {
        return Err(format!("expected 5 seated and 7 refused, got {seated} and {full}").into());
    }

    Ok(())
}

async fn run() -> Result<(), BoxError> {
    let (store, kind) = open(store_arg(USAGE)?.as_deref(), "courses").await?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let run = &run[run.len() - 6..];
    println!("Courses on the {kind} store (run {run})");
    let id = |name: &str| format!("{name}-{run}");

    let mut log = Vec::new();
    for (course, name, capacity) in [
        ("maths", "maths", 5),
        ("art", "art", 2),
        ("music", "music", 10),
        ("latin", "latin", 10),
        ("history", "history", 10),
    ] {
        let outcome = define_course(&store, &id(course), &id(name), capacity).await;
        log.push(vec![
            format!("define {} (capacity {capacity})", id(course)),
            said(&outcome),
        ]);
        outcome?;
    }

    race_for_seats(&store, &id, &mut log).await?;

    // One student takes courses up to the limit.
    let ada = id("ada");
    for course in ["art", "music", "latin", "history"] {
        let outcome = enrol_student(&store, &id(course), &ada).await;
        log.push(vec![format!("enrol {ada} into {course}"), said(&outcome)]);
    }

    // Renaming: a name another course has is refused.
    for (course, name) in [("maths", "art"), ("maths", "algebra")] {
        let outcome = rename_course(&store, &id(course), &id(name)).await;
        log.push(vec![
            format!("rename {} to {}", id(course), id(name)),
            said(&outcome),
        ]);
    }
    print_table("Decisions", &["decision", "outcome"], &log);

    let mut rows = Vec::new();
    for course in ["maths", "art", "music", "latin", "history"] {
        let (state, _) = store.fold(CourseState::of(&id(course))).await?;
        let capacity = state.capacity.unwrap_or_default();
        if state.students.len() as u32 > capacity {
            return Err(format!("{course} holds more students than its capacity").into());
        }
        rows.push(vec![
            id(course),
            format!("{}/{capacity}", state.students.len()),
        ]);
    }
    print_table("Courses, read back", &["course", "students"], &rows);
    let (load, _) = store.fold(StudentState::of(&ada)).await?;
    println!(
        "\n{ada} takes {} courses (at most {MAX_COURSES}).",
        load.courses
    );
    Ok(())
}
