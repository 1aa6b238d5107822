//! CronJob schedules: standard five-field cron expressions and `@hourly`-style nicknames,
//! parsed by the `croner` crate (seconds and years refused, day-of-month and day-of-week
//! ORed as in Vixie cron and robfig/cron), evaluated in `spec.timeZone` (IANA names from the
//! system tz database; UTC when unset), and Kubernetes' `mostRecentScheduleTime` over it.

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    cron: Cron,
    tz: TimeZone,
}

/// Why a schedule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// The expression does not parse (Kubernetes' `UnparseableSchedule`).
    Schedule(String),
    /// The time zone is unknown (Kubernetes' `UnknownTimeZone`).
    TimeZone(String),
}

impl Schedule {
    /// Parses `schedule` for `time_zone`.
    pub(crate) fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Self, Invalid> {
        let tz = match time_zone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|e| Invalid::TimeZone(e.to_string()))?,
        };
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(schedule)
            .map_err(|e| Invalid::Schedule(e.to_string()))?;
        Ok(Self { cron, tz })
    }

    fn zoned(&self, t: Timestamp) -> Zoned {
        t.to_zoned(self.tz.clone())
    }

    /// The first scheduled time strictly after `t`.
    pub(crate) fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_next_occurrence(&self.zoned(t), false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The last scheduled time at or before `t`.
    fn last_until(&self, t: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_previous_occurrence(&self.zoned(t), true)
            .ok()
            .map(|z| z.timestamp())
    }

    /// `t` as RFC 3339 in the schedule's zone (the `cronjob-scheduled-timestamp` annotation).
    pub(crate) fn format(&self, t: Timestamp) -> String {
        let z = self.zoned(t);
        let offset = z.offset();
        if offset.seconds() == 0 {
            format!("{}Z", z.datetime().strftime("%Y-%m-%dT%H:%M:%S"))
        } else {
            z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
        }
    }
}

/// Kubernetes' `mostRecentScheduleTime`: the latest scheduled time after `earliest` (the last
/// schedule time, or the creation time, moved up to `now - startingDeadlineSeconds`) and not
/// after `now`, with how many were missed since `earliest` (counted up to 101).
pub(crate) fn most_recent(
    sched: &Schedule,
    earliest: Timestamp,
    now: Timestamp,
    starting_deadline_seconds: Option<i64>,
) -> (Option<Timestamp>, usize) {
    let mut earliest = earliest;
    if let Some(sds) = starting_deadline_seconds {
        let deadline = now - jiff::SignedDuration::from_secs(sds);
        if deadline > earliest {
            earliest = deadline;
        }
    }
    if earliest > now {
        return (None, 0);
    }
    let Some(first) = sched.next_after(earliest) else {
        return (None, 0);
    };
    if first > now {
        return (None, 0);
    }
    let mut missed = 1;
    let mut t = first;
    while missed <= 100 {
        match sched.next_after(t) {
            Some(n) if n <= now => {
                t = n;
                missed += 1;
            }
            _ => break,
        }
    }
    (sched.last_until(now).filter(|l| *l >= first), missed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_five_fields_and_nicknames_only() {
        assert!(Schedule::parse("*/1 * * * *", None).is_ok());
        assert!(Schedule::parse("@hourly", None).is_ok());
        assert!(Schedule::parse("0 0 * * MON-FRI", None).is_ok());
        assert!(matches!(
            Schedule::parse("*/10 * * * * *", None),
            Err(Invalid::Schedule(_))
        ));
        assert!(matches!(
            Schedule::parse("not a schedule", None),
            Err(Invalid::Schedule(_))
        ));
        assert!(matches!(
            Schedule::parse("* * * * *", Some("Mars/Olympus")),
            Err(Invalid::TimeZone(_))
        ));
    }

    #[test]
    fn next_and_most_recent_times() {
        let s = Schedule::parse("*/5 * * * *", None).unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T10:02:30Z")),
            Some(at("2026-01-01T10:05:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-01-01T10:05:00Z")),
            Some(at("2026-01-01T10:10:00Z"))
        );
        // Nothing due yet.
        let created = at("2026-01-01T10:01:00Z");
        assert_eq!(
            most_recent(&s, created, at("2026-01-01T10:04:59Z"), None),
            (None, 0)
        );
        // One due.
        assert_eq!(
            most_recent(&s, created, at("2026-01-01T10:06:00Z"), None),
            (Some(at("2026-01-01T10:05:00Z")), 1)
        );
        // Several missed: the latest wins.
        assert_eq!(
            most_recent(&s, created, at("2026-01-01T10:21:00Z"), None),
            (Some(at("2026-01-01T10:20:00Z")), 4)
        );
        // startingDeadlineSeconds moves the earliest time up.
        assert_eq!(
            most_recent(&s, created, at("2026-01-01T10:21:00Z"), Some(30)),
            (None, 0)
        );
        assert_eq!(
            most_recent(&s, created, at("2026-01-01T10:20:20Z"), Some(30)),
            (Some(at("2026-01-01T10:20:00Z")), 1)
        );
        // Over a hundred missed are capped at 101.
        let (t, missed) = most_recent(&s, created, at("2026-01-02T10:00:30Z"), None);
        assert_eq!(t, Some(at("2026-01-02T10:00:00Z")));
        assert_eq!(missed, 101);
    }

    #[test]
    fn time_zones_shift_the_schedule() {
        let s = Schedule::parse("0 9 * * *", Some("Europe/Berlin")).unwrap();
        // 09:00 in Berlin in winter is 08:00 UTC.
        assert_eq!(
            s.next_after(at("2026-01-10T00:00:00Z")),
            Some(at("2026-01-10T08:00:00Z"))
        );
        assert_eq!(
            s.format(at("2026-01-10T08:00:00Z")),
            "2026-01-10T09:00:00+01:00"
        );
        let utc = Schedule::parse("0 9 * * *", None).unwrap();
        assert_eq!(
            utc.format(at("2026-01-10T09:00:00Z")),
            "2026-01-10T09:00:00Z"
        );
    }
}
