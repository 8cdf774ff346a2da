//! Cron schedules and time zones.
