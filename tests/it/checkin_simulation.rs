//! Six weeks of a café's check-ins, day by day with an injected clock, on
//! SQLite and PostgreSQL: 300 regulars who may be called (60 of them
//! Maria's, 30 Jonas's, 15 Sam's), Maria (10 calls a day, Monday to Friday),
//! Jonas (8, Tuesday to Saturday, away between the years), Sam (5, Monday to
//! Wednesday, who never calls anyone), the German public holidays plus
//! Christmas Eve and New Year's Eve closed, and an absence of Maria's
//! recorded after her calls for those days were planned.
//!
//! Staff record a scripted outcome for every call on their list each
//! working morning: reached; not reached (once, or on every try of a call,
//! answering when selected again); a callback a few days ahead (on the next
//! possible day when the first is refused); needs help; do not call. Every
//! day the test checks what check-ins promise: no call expires or disappears
//! before its due day; every agreed callback is due on its agreed day with
//! its owner; no list exceeds its capacity except for agreed callbacks;
//! whoever leaves the call list leaves it with a recorded reason; nobody
//! waits while someone who may call them has room on a list being filled.
//! At the end: everyone the first run selected was called, none was planned
//! after someone behind them, and nothing was planned past the next day its
//! staff member works.

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};
use common::app::{TestApp, berlin};
use common::mail::Mail;
use common::{Db, backend_test};
use outreach::app::App;
use outreach::store::{EntryState, ListReason, Task, TaskKind, TaskState};
use outreach::tasks::{OutcomeError, record_outcome};

const DAYS: u64 = 42;
const CUSTOMERS: u32 = 300;

fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 14).unwrap() // a Monday
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Maria's absence, recorded on Friday 8 January after her Monday calls were planned.
fn late_absence() -> (NaiveDate, NaiveDate) {
    (date(2027, 1, 11), date(2027, 1, 12))
}

fn recorded_on() -> NaiveDate {
    date(2027, 1, 8)
}

struct Staffer {
    id: &'static str,
    capacity: i64,
    days: &'static [Weekday],
    /// Sam never records anything.
    calls: bool,
}

fn staff() -> Vec<Staffer> {
    use Weekday::*;
    vec![
        Staffer {
            id: "maria",
            capacity: 10,
            days: &[Mon, Tue, Wed, Thu, Fri],
            calls: true,
        },
        Staffer {
            id: "jonas",
            capacity: 8,
            days: &[Tue, Wed, Thu, Fri, Sat],
            calls: true,
        },
        Staffer {
            id: "sam",
            capacity: 5,
            days: &[Mon, Tue, Wed],
            calls: false,
        },
    ]
}

fn jonas_away() -> (NaiveDate, NaiveDate) {
    (date(2026, 12, 28), date(2027, 1, 2))
}

/// The test's own calendar, written out rather than computed by the code under test.
fn closed(day: NaiveDate) -> bool {
    [
        date(2026, 12, 24),
        date(2026, 12, 25),
        date(2026, 12, 26),
        date(2026, 12, 31),
        date(2027, 1, 1),
    ]
    .contains(&day)
}

fn away(s: &Staffer, day: NaiveDate, late_recorded: bool) -> bool {
    let within = |(from, to): (NaiveDate, NaiveDate)| from <= day && day <= to;
    (s.id == "jonas" && within(jonas_away()))
        || (s.id == "maria" && late_recorded && within(late_absence()))
}

fn works(s: &Staffer, day: NaiveDate, late_recorded: bool) -> bool {
    s.days.contains(&day.weekday()) && !closed(day) && !away(s, day, late_recorded)
}

fn config(dir: &Path, db_url: &str, late_recorded: bool) -> String {
    let maria_away = if late_recorded {
        let (from, to) = late_absence();
        format!("absences = [{{ from = {from}, to = {to} }}]")
    } else {
        String::new()
    };
    let (jf, jt) = jonas_away();
    format!(
        r#"
[business]
name = "Café Linde"
timezone = "Europe/Berlin"
locale = "de"
from = "Café Linde <hallo@cafe-linde.example>"
postal_address = "Lindenstraße 12, 50674 Köln"
base_url = "http://127.0.0.1:8080"
closed = ["holidays:de", "12-24", "12-31"]
contact_staff = "jonas"

[database]
url = "{db_url}"

[mail]
file_dir = "{outbox}"

[templates]
dir = "{templates}"

# The outbox files carry the real clock's times; the simulation ticks weeks
# ahead with its own, so they are kept for good.
[retention]
outbox_files = "36500d"

[limits]
frequency_cap = ""
quiet_hours = ""

[[staff]]
id = "maria"
name = "Maria"
email = "maria@cafe-linde.example"
daily_capacity = 10
digest_at = "08:30"
days = ["mon", "tue", "wed", "thu", "fri"]
{maria_away}

[[staff]]
id = "jonas"
name = "Jonas"
email = "jonas@cafe-linde.example"
daily_capacity = 8
digest_at = "09:00"
days = ["tue", "wed", "thu", "fri", "sat"]
manager = "maria"
absences = [{{ from = {jf}, to = {jt} }}]

[[staff]]
id = "sam"
name = "Sam"
email = "sam@cafe-linde.example"
daily_capacity = 5
digest_at = "08:00"
days = ["mon", "tue", "wed"]
manager = "maria"

[[checkin]]
id = "stammgaeste"
audience = "true"
schedule = "0 7 * * Mon"
assign = "owner"
min_days_between_personal_contacts = 60
due_in = "0d"
escalate_after = "2d"
expire_after = "5d"
max_attempts = 3
reason = "Lange nichts gehört – einfach nachfragen, wie es geht."
template = "checkin"
"#,
        outbox = dir.join("outbox").display(),
        templates = common::repo_path("templates").display()
    )
}

fn customers_csv() -> String {
    let mut csv =
        "external_id,email,name,phone,consent,phone_consent,do_not_call,is_business,owner\n"
            .to_string();
    for k in 1..=CUSTOMERS {
        let owner = match k {
            1..=60 => "maria",
            61..=90 => "jonas",
            91..=105 => "sam",
            _ => "",
        };
        csv.push_str(&format!(
            "C{k:03},gast{k}@example.de,Gast {k:03},+49 221 555 {k:04},yes,yes,no,no,{owner}\n"
        ));
    }
    csv
}

/// What a customer says on the phone.
enum Script {
    Reached,
    NotReached,
    Callback(u64),
    NeedsHelp,
    DoNotCall,
}

/// `had_callback`: they agreed one before; `gave_up`: they were not reached
/// on every try of an earlier call (and answer this time).
fn script(k: u32, task: &Task, had_callback: bool, gave_up: bool) -> Script {
    if task.kind != TaskKind::Call || had_callback || gave_up {
        return Script::Reached;
    }
    match k {
        _ if k.is_multiple_of(20) => Script::DoNotCall,
        _ if k % 20 == 1 => Script::NeedsHelp,
        _ if k % 10 == 2 => Script::Callback(u64::from(k % 4) + 1),
        _ if k % 10 == 3 && task.attempts == 0 => Script::NotReached,
        _ if k % 25 == 4 => Script::NotReached,
        _ => Script::Reached,
    }
}

/// An agreed callback: (customer, day, who agreed it).
type Promise = (i64, NaiveDate, String);

#[derive(Default)]
struct Figures {
    outcomes: u32,
    reached: u32,
    callbacks_agreed: u32,
    callbacks_refused: u32,
    staff_days: u32,
    staff_days_full: u32,
    released_unmade: u32,
    returned_unplaced: u32,
    callbacks_covered: u32,
    max_wait_days: i64,
    first_run_done_on: Option<NaiveDate>,
    forecast_day0: Option<NaiveDate>,
}

struct Sim<'a> {
    t: &'a TestApp,
    app: App,
    url: String,
    late_recorded: bool,
    number: HashMap<i64, u32>,
    promises: Vec<Promise>,
    had_callback: HashSet<i64>,
    gave_up: HashSet<i64>,
    /// Every task seen: its customer and the day it was first planned for.
    seen_tasks: HashMap<i64, (i64, NaiveDate)>,
    waiting: BTreeMap<i64, i64>,
    seen_mails: HashSet<std::path::PathBuf>,
    /// (to, subject, text) of every mail so far.
    mails: Vec<(String, String, String)>,
    figures: Figures,
}

impl Sim<'_> {
    async fn tick(&mut self, day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
        let now = berlin(day.year(), day.month(), day.day(), h, m);
        outreach::daemon::tick(&self.app, &self.t.delivery, now)
            .await
            .unwrap_or_else(|e| panic!("{}: tick at {now}: {e:#}", self.url));
        self.read_mails();
        now
    }

    fn read_mails(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.t.outbox()) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if self.seen_mails.insert(path.clone()) {
                let mail = Mail::parse(&std::fs::read_to_string(&path).unwrap());
                let text = mail.text().to_string();
                self.mails.push((mail.to, mail.subject, text));
            }
        }
    }

    async fn tasks(&self) -> Vec<Task> {
        self.app.store.tasks(None, false).await.unwrap()
    }

    /// Every working staff member who calls records an outcome for every call on their list.
    async fn make_calls(&mut self, day: NaiveDate) {
        let now = berlin(day.year(), day.month(), day.day(), 10, 0);
        for s in staff() {
            if !s.calls || !works(&s, day, self.late_recorded) {
                continue;
            }
            let list = self.app.store.tasks(Some(s.id), true).await.unwrap();
            for (i, task) in list.into_iter().filter(|t| t.due_on <= day).enumerate() {
                let k = self.number[&task.customer_id];
                let had = self.had_callback.contains(&task.customer_id);
                let gave_up = self.gave_up.contains(&task.customer_id);
                // The Friday before her absence is recorded, Maria's first
                // call agrees a callback for Monday.
                let script = if day == recorded_on() && s.id == "maria" && i == 0 {
                    Script::Callback(3)
                } else {
                    script(k, &task, had, gave_up)
                };
                let (outcome, on) = match script {
                    Script::Reached => ("reached", None),
                    Script::NotReached => ("not_reached", None),
                    Script::Callback(n) => ("callback", Some(day + Days::new(n))),
                    Script::NeedsHelp => ("needs_help", None),
                    Script::DoNotCall => ("do_not_call", None),
                };
                let mut on = on;
                let recorded = loop {
                    match record_outcome(&self.app, task.id, outcome, None, on, now).await {
                        Ok(recorded) => break recorded,
                        Err(e) => {
                            let next = match e.downcast_ref::<OutcomeError>() {
                                Some(
                                    OutcomeError::ClosedDay { day: d, next }
                                    | OutcomeError::DayOff { day: d, next, .. },
                                ) => {
                                    let next = next.expect("a next possible day is offered");
                                    assert!(next > *d, "{}: {e}", self.url);
                                    assert!(
                                        works(&s, next, self.late_recorded),
                                        "{}: {} offered {next}, a day off: {e}",
                                        self.url,
                                        s.id
                                    );
                                    assert!(
                                        !works(&s, *d, self.late_recorded),
                                        "{}: {d} refused for {} though they work: {e}",
                                        self.url,
                                        s.id
                                    );
                                    next
                                }
                                _ => panic!("{}: task {}: {e:#}", self.url, task.id),
                            };
                            self.figures.callbacks_refused += 1;
                            on = Some(next);
                        }
                    }
                };
                assert!(recorded, "{}: task {} was open", self.url, task.id);
                self.figures.outcomes += 1;
                if outcome == "reached" {
                    self.figures.reached += 1;
                }
                if outcome == "not_reached" && task.attempts == 2 {
                    self.gave_up.insert(task.customer_id);
                }
                if let Some(on) = on {
                    self.figures.callbacks_agreed += 1;
                    self.had_callback.insert(task.customer_id);
                    self.promises
                        .push((task.customer_id, on, task.staff_id.clone()));
                }
            }
        }
    }

    /// After `s`'s digest went out: their list holds no more than their
    /// capacity besides callbacks agreed for today, and if it has room,
    /// nobody they could call is waiting.
    async fn check_list(&mut self, s: &Staffer, day: NaiveDate) {
        if !works(s, day, self.late_recorded) {
            return;
        }
        let list: Vec<Task> = self
            .app
            .store
            .tasks(Some(s.id), true)
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.due_on <= day)
            .collect();
        // Agreed callbacks, marked as such, are the only calls that may go beyond.
        let counted = list.iter().filter(|t| t.kind != TaskKind::Callback).count() as i64;
        assert!(
            counted <= s.capacity,
            "{}: {day}: {} has {counted} calls besides agreed callbacks, capacity {}: {list:#?}",
            self.url,
            s.id,
            s.capacity
        );
        self.figures.staff_days += 1;
        // Callbacks agreed for today count too: they take places first.
        if list.len() as i64 >= s.capacity {
            self.figures.staff_days_full += 1;
            return;
        }
        let owners = self.owners().await;
        let present = |id: &str| {
            staff()
                .iter()
                .any(|x| x.id == id && !away(x, day, self.late_recorded))
        };
        for e in self.app.store.call_list(true).await.unwrap() {
            let mine = match e.reason {
                ListReason::Callback | ListReason::FollowUp => e
                    .staff_id
                    .as_deref()
                    .is_none_or(|k| k == s.id || !present(k)),
                ListReason::Regular | ListReason::Checkin | ListReason::BadAddress => {
                    owners[&e.customer_id].as_deref().is_none_or(|o| {
                        o == s.id || !present(o) || e.avoid_staff_id.as_deref() == Some(o)
                    })
                }
            };
            let could = mine
                && e.avoid_staff_id.as_deref() != Some(s.id)
                && e.not_before.is_none_or(|d| d <= day);
            assert!(
                !could,
                "{}: {day}: {} has room ({} of {}) while {e:?} waits",
                self.url,
                s.id,
                list.len(),
                s.capacity
            );
        }
    }

    async fn owners(&self) -> HashMap<i64, Option<String>> {
        let ids: Vec<i64> = self.number.keys().copied().collect();
        self.app
            .store
            .customers_by_ids(&ids)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.id, c.owner))
            .collect()
    }

    /// Every agreed callback from today on is due on its day, with its owner;
    /// today's is in its caller's digest, marked.
    fn check_promises(&self, day: NaiveDate, tasks: &[Task]) {
        for (customer, on, owner) in self.promises.iter().filter(|p| p.1 >= day) {
            let call = tasks
                .iter()
                .find(|t| {
                    t.customer_id == *customer
                        && t.kind == TaskKind::Callback
                        && t.agreed_on == Some(*on)
                })
                .unwrap_or_else(|| {
                    panic!(
                        "{}: {day}: callback for {customer} on {on} is gone",
                        self.url
                    )
                });
            assert_eq!(
                (call.due_on, call.owner_id.as_str(), call.state),
                (*on, owner.as_str(), TaskState::Open),
                "{}: {day}: {call:?}",
                self.url
            );
            let caller = staff().into_iter().find(|s| s.id == call.staff_id).unwrap();
            if call.staff_id != *owner {
                let owner = staff().into_iter().find(|s| s.id == *owner).unwrap();
                assert!(
                    !works(&owner, *on, self.late_recorded)
                        && works(&caller, *on, self.late_recorded),
                    "{}: {day}: callback moved without cause: {call:?}",
                    self.url
                );
            }
            if *on == day {
                let name = format!("Gast {:03}", self.number[customer]);
                let digest = self.mails.iter().find(|(to, subject, text)| {
                    to.starts_with(&call.staff_id)
                        && subject.starts_with("Ihre Anrufe")
                        && text.lines().any(|l| {
                            l.contains(&name) && l.contains("Rückruf vereinbart für heute")
                        })
                });
                assert!(
                    digest.is_some() || !caller.calls,
                    "{}: {day}: {name}'s callback is not marked in {}'s digest",
                    self.url,
                    call.staff_id
                );
            }
        }
    }

    /// Notes the day each new task is planned for, before anyone records an outcome.
    fn remember(&mut self, tasks: &[Task]) {
        for task in tasks {
            self.seen_tasks
                .entry(task.id)
                .or_insert((task.customer_id, task.due_on));
        }
    }

    /// No call expires or disappears before its due day; one that goes back
    /// does so with its history, an unmade one after the manager was told;
    /// whoever left the call list left it with a reason.
    async fn check_nothing_lost(&mut self, day: NaiveDate, tasks: &[Task]) {
        let by_id: HashMap<i64, &Task> = tasks.iter().map(|t| (t.id, t)).collect();
        for (id, (customer, _)) in &self.seen_tasks {
            let task = by_id
                .get(id)
                .unwrap_or_else(|| panic!("{}: task {id} vanished", self.url));
            assert_eq!(task.customer_id, *customer);
        }
        let entries = self.app.store.call_list(false).await.unwrap();
        let came_back: HashSet<i64> = entries.iter().filter_map(|e| e.from_task_id).collect();
        self.remember(tasks);
        for task in tasks {
            let closed_at = task
                .outcome_at
                .map(|at| at.with_timezone(&chrono_tz::Europe::Berlin).date_naive());
            match task.state {
                TaskState::Expired => {
                    let at = task.outcome_at.unwrap();
                    let told = task
                        .escalated_at
                        .unwrap_or_else(|| panic!("{}: {day}: expired untold: {task:?}", self.url));
                    assert!(
                        told < at,
                        "{}: told and expired at once: {task:?}",
                        self.url
                    );
                    assert!(
                        closed_at.unwrap() > task.due_on,
                        "{}: expired before its day was over: {task:?}",
                        self.url
                    );
                    assert!(came_back.contains(&task.id), "{}: {task:?}", self.url);
                    let name = format!("Gast {:03}", self.number[&task.customer_id]);
                    assert!(
                        self.mails.iter().any(|(_, subject, text)| subject
                            .starts_with("Überfällige Anrufe")
                            && text.contains(&name)),
                        "{}: no escalation mentioned {name}",
                        self.url
                    );
                }
                TaskState::Returned => {
                    assert!(closed_at.unwrap() <= task.due_on, "{}: {task:?}", self.url);
                    assert!(came_back.contains(&task.id), "{}: {task:?}", self.url);
                }
                TaskState::Open | TaskState::Done => {}
            }
        }
        let now_waiting: BTreeMap<i64, i64> = entries
            .iter()
            .filter(|e| e.state == EntryState::Waiting)
            .map(|e| (e.id, e.customer_id))
            .collect();
        for (id, customer) in &self.waiting {
            if now_waiting.contains_key(id) {
                continue;
            }
            let e = entries.iter().find(|e| e.id == *id).unwrap();
            match e.state {
                EntryState::Planned => {
                    let task = by_id[&e.task_id.expect("a planned entry names its task")];
                    assert_eq!(task.customer_id, *customer, "{}: {e:?}", self.url);
                    let joined = e
                        .added_at
                        .with_timezone(&chrono_tz::Europe::Berlin)
                        .date_naive();
                    self.figures.max_wait_days = self
                        .figures
                        .max_wait_days
                        .max((task.due_on - joined).num_days());
                }
                EntryState::Dropped => assert!(e.drop_reason.is_some(), "{}: {e:?}", self.url),
                EntryState::Waiting => unreachable!(),
            }
        }
        let _ = day;
        self.waiting = now_waiting;
    }
}

backend_test!(
    six_weeks_of_check_ins_keep_every_promise,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn six_weeks_of_check_ins_keep_every_promise(Db { url, .. }: Db) {
    let began = Instant::now();
    let app_dir = tempfile::tempdir().unwrap();
    let text = config(app_dir.path(), &url, false);
    let t = TestApp::with_config(app_dir, &url, &text).await;
    t.import(&customers_csv()).await;
    let mut number = HashMap::new();
    for k in 1..=CUSTOMERS {
        let c = t
            .app
            .store
            .find_customer(&format!("C{k:03}"))
            .await
            .unwrap()
            .unwrap();
        number.insert(c.id, k);
    }
    let mut sim = Sim {
        app: t.sibling("sim").await,
        t: &t,
        url: url.clone(),
        late_recorded: false,
        number,
        promises: Vec::new(),
        had_callback: HashSet::new(),
        gave_up: HashSet::new(),
        seen_tasks: HashMap::new(),
        waiting: BTreeMap::new(),
        seen_mails: HashSet::new(),
        mails: Vec::new(),
        figures: Figures::default(),
    };
    // The daemon is running the evening before (the rule is armed then).
    sim.tick(start() - Days::new(1), 20, 0).await;
    let mut first_run: Option<HashSet<i64>> = None;
    for i in 0..DAYS {
        let day = start() + Days::new(i);
        if day.weekday() == Weekday::Mon {
            sim.tick(day, 7, 0).await; // the weekly run
        }
        if first_run.is_none() {
            let waiting = sim.app.store.call_list(false).await.unwrap();
            first_run = Some(waiting.iter().map(|e| e.id).collect());
            assert_eq!(
                waiting.len(),
                CUSTOMERS as usize,
                "{url}: all on the call list"
            );
        }
        // Every digest is due by 09:00; each list was filled before its digest.
        sim.tick(day, 9, 0).await;
        for s in staff() {
            sim.check_list(&s, day).await;
        }
        if i == 0 {
            let summary = outreach::tasks::summary::summarize(&sim.app, berlin(2026, 12, 14, 9, 1))
                .await
                .unwrap();
            sim.figures.forecast_day0 = summary.all_called_by;
        }
        let tasks = sim.tasks().await;
        sim.check_promises(day, &tasks);
        sim.remember(&tasks);
        sim.make_calls(day).await;
        sim.tick(day, 10, 5).await;
        if day == recorded_on() {
            // Maria's absence is recorded after her Monday calls were planned.
            let planned: Vec<Task> = sim
                .app
                .store
                .tasks(Some("maria"), true)
                .await
                .unwrap()
                .into_iter()
                .filter(|t| t.due_on >= late_absence().0 && t.due_on <= late_absence().1)
                .collect();
            assert!(
                !planned.is_empty(),
                "{url}: Monday's calls were planned on Friday"
            );
            std::fs::write(&t.app.config.path, config(t.dir.path(), &url, true)).unwrap();
            sim.app = t.sibling("sim-reloaded").await;
            sim.late_recorded = true;
            sim.tick(day, 12, 0).await;
            for before in planned {
                let after = sim.app.store.task(before.id).await.unwrap().unwrap();
                match after.state {
                    TaskState::Open => {
                        assert_ne!(after.staff_id, "maria", "{url}: {after:?}");
                        assert_eq!(
                            (after.due_on, after.owner_id.as_str()),
                            (before.due_on, "maria"),
                            "{url}: moved on the same day, ownership stays"
                        );
                        if after.kind == TaskKind::Callback {
                            sim.figures.callbacks_covered += 1;
                        }
                    }
                    TaskState::Returned => sim.figures.returned_unplaced += 1,
                    other => panic!("{url}: {other}: {after:?}"),
                }
            }
        }
        let tasks = sim.tasks().await;
        sim.check_nothing_lost(day, &tasks).await;
        let first = first_run.as_ref().unwrap();
        if sim.figures.first_run_done_on.is_none() && !sim.waiting.keys().any(|e| first.contains(e))
        {
            sim.figures.first_run_done_on = Some(day);
        }
    }
    let tasks = sim.tasks().await;
    sim.figures.released_unmade = tasks
        .iter()
        .filter(|t| t.state == TaskState::Expired)
        .count() as u32;

    // Everyone from the first run was called (or left with a reason),
    // in the documented order: each list took the next in line, so
    // nobody was planned after someone behind them (all joined at once:
    // their place in line is the order they joined).
    let entries = sim.app.store.call_list(false).await.unwrap();
    let owners = sim.owners().await;
    let mut queues: BTreeMap<Option<String>, Vec<DateTime<Utc>>> = BTreeMap::new();
    let first = first_run.as_ref().unwrap();
    for e in entries.iter().filter(|e| first.contains(&e.id)) {
        assert_ne!(e.state, EntryState::Waiting, "{url}: still waiting: {e:?}");
        if e.state == EntryState::Planned {
            queues
                .entry(owners[&e.customer_id].clone())
                .or_default()
                .push(e.left_at.unwrap());
        }
    }
    for (owner, planned) in &queues {
        assert!(
            planned.windows(2).all(|w| w[0] <= w[1]),
            "{url}: {owner:?}'s customers were not planned in order: {planned:?}"
        );
    }
    // Nothing was planned ahead of the next day its staff member works,
    // except callbacks on the day agreed.
    let made: HashMap<i64, NaiveDate> = tasks
        .iter()
        .map(|t| {
            (
                t.id,
                t.created_at
                    .with_timezone(&chrono_tz::Europe::Berlin)
                    .date_naive(),
            )
        })
        .collect();
    for t in tasks.iter().filter(|t| t.kind != TaskKind::Callback) {
        let (_, due) = sim.seen_tasks[&t.id];
        let staffer = staff().into_iter().find(|s| s.id == t.staff_id).unwrap();
        let skipped: Vec<NaiveDate> = made[&t.id]
            .iter_days()
            .skip(1)
            .take_while(|d| *d < due)
            .filter(|d| works(&staffer, *d, true))
            .collect();
        assert!(
            skipped.is_empty(),
            "{url}: planned past {skipped:?}, working days of {}: {t:?}",
            t.staff_id
        );
    }
    let f = &sim.figures;
    eprintln!(
        "{url}: {} outcomes ({} reached), {} callbacks ({} first refused, {} covered by a colleague), \
         {} calls back on the list after the manager was told, {} returned unplaced; \
         lists full on {} of {} staff working days; longest wait {} days; \
         first run planned in full by {:?} (forecast on day one: {:?}); {:.1?}",
        f.outcomes,
        f.reached,
        f.callbacks_agreed,
        f.callbacks_refused,
        f.callbacks_covered,
        f.released_unmade,
        f.returned_unplaced,
        f.staff_days_full,
        f.staff_days,
        f.max_wait_days,
        f.first_run_done_on,
        f.forecast_day0,
        began.elapsed()
    );
    let sam_calls = tasks.iter().filter(|t| t.staff_id == "sam").count();
    let sam_released = tasks
        .iter()
        .filter(|t| t.staff_id == "sam" && t.state == TaskState::Expired)
        .count();
    assert!(
        sam_released > 0
            && sam_calls
                == sam_released
                    + tasks
                        .iter()
                        .filter(|t| t.staff_id == "sam" && t.state == TaskState::Open)
                        .count(),
        "{url}: Sam's unmade calls all went back ({sam_released} of {sam_calls})"
    );
    assert!(
        sim.figures.callbacks_refused > 0,
        "{url}: the script books callbacks on days off"
    );
    assert!(
        sim.figures.callbacks_covered > 0,
        "{url}: one of Maria's callbacks fell in her late absence"
    );
    for mark in ["Rückruf vereinbart für heute", "2. Versuch", "Nachfassen"] {
        assert!(
            sim.mails
                .iter()
                .any(|(_, s, text)| s.starts_with("Ihre Anrufe") && text.contains(mark)),
            "{url}: no digest shows {mark:?}"
        );
    }
    let weekly = sim
        .mails
        .iter()
        .filter(|(to, s, _)| to.starts_with("maria@") && s.starts_with("Anrufliste"))
        .count();
    assert_eq!(weekly, 6, "{url}: one summary a week for the manager");
}
