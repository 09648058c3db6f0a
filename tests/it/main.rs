//! lifeboat's integration tests, linked once as one binary (`cargo test --test it`): one
//! module per area, against the real binary and real servers where they exist, sharing
//! the helpers and fakes in `common`.

mod common;

mod alert_delivery;
mod approval_races;
mod btrfs;
mod changed_while_read;
mod chat_latency;
mod cli_and_config;
mod continuous;
mod deploy;
mod directory_targets;
mod discord;
mod discord_gateway;
mod drills;
mod faults;
mod first_start;
mod gcp_disk;
mod hooks;
mod http_floods;
mod incidents;
mod long_content;
mod monitoring;
mod native_trees;
mod one_file_back;
mod recovery;
mod repository;
mod repository_faults;
mod runbooks;
mod s3_store;
mod seed_data_volume;
mod slack;
mod slack_socket;
mod sqlite_targets;
mod ssh_targets;
mod state_damage;
mod status_page;
mod tree_file_list;
mod watchdog;
mod watchdog_sim;
