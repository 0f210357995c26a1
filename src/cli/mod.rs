pub mod status;
pub mod ui;
