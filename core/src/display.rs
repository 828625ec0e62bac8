//! `Display` for the error enums: one message per variant, so that each
//! enum's messages read as a table and the `match` around them is written once.

/// Implements `Display` for an enum from arms `pattern => (format, args…)`:
/// the value is matched by copy and the arm's arguments go to one `write!`
/// (a format string may name the pattern's bindings inline).
macro_rules! display_messages {
    ($ty:ty { $($pat:pat => ($($msg:tt)+)),+ $(,)? }) => {
        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match *self {
                    $($pat => write!(f, $($msg)+),)+
                }
            }
        }
    };
}
