//! Enums stored and shown by their names (a stream's kind and format, a destination's
//! kind): one macro gives each the same `as_str`, `parse`, `ALL`, `Display` and serde
//! form, so that a backend stores the name and reads it back into the type.

/// Declares an enum whose variants are known by the given names.
macro_rules! named {
    ($(#[$m:meta])* pub enum $t:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $t {
            $($(#[$vm])* #[serde(rename = $s)] $v),+
        }

        impl $t {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$t] = &[$($t::$v),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($t::$v => $s),+
                }
            }

            /// The variant of this name (`None` for any other text).
            pub fn parse(s: &str) -> Option<$t> {
                match s {
                    $($s => Some($t::$v),)+
                    _ => None,
                }
            }

            /// The names, as an error message lists them (`a, b, c`).
            pub fn names() -> String {
                [$($s),+].join(", ")
            }
        }

        impl $crate::named::Named for $t {
            const WHAT: &'static str = stringify!($t);
            fn from_name(s: &str) -> Option<$t> {
                $t::parse(s)
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use named;

/// What a backend needs to read a named enum back from its column.
pub(crate) trait Named: Sized {
    /// The type's name, for the error about a column holding another name.
    const WHAT: &'static str;
    fn from_name(s: &str) -> Option<Self>;
}

/// A stored name read back, or `Corrupt` naming the text found.
pub(crate) fn read<T: Named>(s: &str) -> Result<T, crate::StoreError> {
    T::from_name(s).ok_or_else(|| crate::StoreError::Corrupt(format!("a stored {} is '{s}'", T::WHAT)))
}
