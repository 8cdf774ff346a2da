//! Cron schedules and time zones (placeholder until the normalising layer lands).

#[derive(Debug, Clone)]
pub struct CronSchedule;

#[derive(Debug, Clone)]
pub struct CronError {
    pub message: String,
    pub field: Option<usize>,
    pub span: Option<std::ops::Range<usize>>,
}

impl CronSchedule {
    pub fn parse(text: &str) -> Result<CronSchedule, CronError> {
        let n = text.split_whitespace().count();
        if (5..=7).contains(&n) {
            Ok(CronSchedule)
        } else {
            Err(CronError {
                message: format!("expected 5 fields, found {n}"),
                field: None,
                span: None,
            })
        }
    }
}

#[derive(Debug, Clone)]
pub struct TzError {
    pub message: String,
    pub suggestion: Option<String>,
}

pub fn parse_time_zone(name: &str) -> Result<chrono_tz::Tz, TzError> {
    name.parse().map_err(|_| TzError {
        message: format!("unknown time zone `{name}`"),
        suggestion: None,
    })
}
