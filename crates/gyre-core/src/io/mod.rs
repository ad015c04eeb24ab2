//! Files: the safetensors format and the model file built on it.

pub mod model_file;
pub mod safetensors;
mod safetensors_header;
