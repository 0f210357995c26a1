pub mod plan;
pub mod status;
pub mod ui;
