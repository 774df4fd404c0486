//! Fold arguments: [`req`], [`opt`], [`dft`], and argument lists.
//!
//! An argument list is a single argument or a tuple of up to eight (or `()` for none); the fold
//! function receives a single value or a tuple in the same shape: `T` for `Req<T>`, `Option<T>`
//! for `Opt<T>`, `T` for `Dft<T>`. The traits are sealed: the resolver relies on their shape.

use std::any::Any;
use std::rc::Rc;

use super::Value;

/// A required argument: the fold fails when `key` cannot be resolved.
#[derive(Clone, Copy, Debug)]
pub struct Req<T>(Value<T>);

/// An optional argument: `None` when `key` cannot be resolved (absent, or its folds failed).
#[derive(Clone, Copy, Debug)]
pub struct Opt<T>(Value<T>);

/// An argument with a default, used when `key` cannot be resolved (absent, or its folds
/// failed).
#[derive(Clone, Debug)]
pub struct Dft<T>(Value<T>, T);

/// `key` is required (mimic's `req`).
pub fn req<T>(key: &Value<T>) -> Req<T> {
    Req(*key)
}

/// `key` is optional (mimic's `opt`).
pub fn opt<T>(key: &Value<T>) -> Opt<T> {
    Opt(*key)
}

/// `key`, or `default` when it cannot be resolved (mimic's `dft`).
pub fn dft<T>(key: &Value<T>, default: T) -> Dft<T> {
    Dft(*key, default)
}

/// What one argument asks of the resolver. Opaque.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgSpec {
    pub(crate) key: u64,
    pub(crate) name: &'static str,
    pub(crate) required: bool,
}

mod sealed {
    pub trait Sealed {}
}

/// One fold argument ([`Req`], [`Opt`] or [`Dft`]).
pub trait Arg: sealed::Sealed + 'static {
    /// What the fold function gets for it.
    type Output;
    /// The key and whether it is required.
    fn spec(&self) -> ArgSpec;
    /// The argument from the resolved value of its key (`None`: not resolvable); `None` when a
    /// required value is absent or of another type.
    fn build(&self, value: Option<&Rc<dyn Any>>) -> Option<Self::Output>;
}

impl<T: Clone + 'static> sealed::Sealed for Req<T> {}
impl<T: Clone + 'static> sealed::Sealed for Opt<T> {}
impl<T: Clone + 'static> sealed::Sealed for Dft<T> {}

impl<T: Clone + 'static> Arg for Req<T> {
    type Output = T;
    fn spec(&self) -> ArgSpec {
        spec(&self.0, true)
    }
    fn build(&self, value: Option<&Rc<dyn Any>>) -> Option<T> {
        value?.downcast_ref::<T>().cloned()
    }
}

impl<T: Clone + 'static> Arg for Opt<T> {
    type Output = Option<T>;
    fn spec(&self) -> ArgSpec {
        spec(&self.0, false)
    }
    fn build(&self, value: Option<&Rc<dyn Any>>) -> Option<Option<T>> {
        match value {
            None => Some(None),
            Some(v) => v.downcast_ref::<T>().cloned().map(Some),
        }
    }
}

impl<T: Clone + 'static> Arg for Dft<T> {
    type Output = T;
    fn spec(&self) -> ArgSpec {
        spec(&self.0, false)
    }
    fn build(&self, value: Option<&Rc<dyn Any>>) -> Option<T> {
        match value {
            None => Some(self.1.clone()),
            Some(v) => v.downcast_ref::<T>().cloned(),
        }
    }
}

fn spec<T>(key: &Value<T>, required: bool) -> ArgSpec {
    ArgSpec {
        key: key.id,
        name: key.name,
        required,
    }
}

/// A fold's argument list: one [`Arg`], a tuple of them, or `()`.
pub trait Args: sealed::Sealed + 'static {
    /// What the fold function gets: one value, or a tuple.
    type Output;
    /// The arguments' specs, in order.
    fn specs(&self) -> Vec<ArgSpec>;
    /// The fold function's input from the resolved values, in `specs` order (`None` for a key
    /// that could not be resolved); `None` when a required value is absent or mistyped.
    fn build(&self, values: &[Option<Rc<dyn Any>>]) -> Option<Self::Output>;
}

macro_rules! single {
    ($($ty:ident),*) => {$(
        impl<T: Clone + 'static> Args for $ty<T> {
            type Output = <$ty<T> as Arg>::Output;
            fn specs(&self) -> Vec<ArgSpec> {
                vec![self.spec()]
            }
            fn build(&self, values: &[Option<Rc<dyn Any>>]) -> Option<Self::Output> {
                Arg::build(self, values.first()?.as_ref())
            }
        }
    )*};
}

single!(Req, Opt, Dft);

macro_rules! tuple {
    ($($name:ident $i:tt),*) => {
        impl<$($name: Arg),*> sealed::Sealed for ($($name,)*) {}

        impl<$($name: Arg),*> Args for ($($name,)*) {
            type Output = ($($name::Output,)*);
            fn specs(&self) -> Vec<ArgSpec> {
                vec![$(self.$i.spec()),*]
            }
            #[allow(unused_variables)]
            fn build(&self, values: &[Option<Rc<dyn Any>>]) -> Option<Self::Output> {
                Some(($(self.$i.build(values.get($i)?.as_ref())?,)*))
            }
        }
    };
}

tuple!();
tuple!(A 0);
tuple!(A 0, B 1);
tuple!(A 0, B 1, C 2);
tuple!(A 0, B 1, C 2, D 3);
tuple!(A 0, B 1, C 2, D 3, E 4);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
