//! Arenas with typed indices: the storage of every IR entity.
//!
//! An [`Arena<T>`] owns values of one kind; an [`Id<T>`] is a 32-bit index into it that
//! cannot be confused with an index of another kind. Entities are never freed: a pass that
//! erases an op unlinks it from its block, and the arena slot simply becomes unreachable.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

/// A typed index into an [`Arena<T>`].
pub struct Id<T> {
    index: u32,
    kind: PhantomData<fn() -> T>,
}

impl<T> Id<T> {
    /// The position in the arena (for dense side tables).
    pub fn index(self) -> usize {
        self.index as usize
    }
}

impl<T> Clone for Id<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Id<T> {}
impl<T> PartialEq for Id<T> {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
    }
}
impl<T> Eq for Id<T> {}
impl<T> PartialOrd for Id<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Id<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.index.cmp(&other.index)
    }
}
impl<T> Hash for Id<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.index.hash(state)
    }
}
impl<T> fmt::Debug for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = std::any::type_name::<T>();
        let short = full.rsplit("::").next().unwrap_or(full);
        write!(f, "{short}#{}", self.index)
    }
}

/// Owns values of one kind, addressed by [`Id<T>`].
#[derive(Clone, Debug)]
pub struct Arena<T> {
    items: Vec<T>,
}

impl<T> Default for Arena<T> {
    fn default() -> Self {
        Arena { items: Vec::new() }
    }
}

impl<T> Arena<T> {
    /// Stores `item` and returns its id.
    pub fn alloc(&mut self, item: T) -> Id<T> {
        let index = u32::try_from(self.items.len()).expect("an IR arena holds at most 2^32 entities");
        self.items.push(item);
        Id { index, kind: PhantomData }
    }

    /// How many entities were ever allocated (erased ones included).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<T> Index<Id<T>> for Arena<T> {
    type Output = T;
    fn index(&self, id: Id<T>) -> &T {
        &self.items[id.index()]
    }
}

impl<T> IndexMut<Id<T>> for Arena<T> {
    fn index_mut(&mut self, id: Id<T>) -> &mut T {
        &mut self.items[id.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_index_their_own_arena() {
        let mut a: Arena<&str> = Arena::default();
        let x = a.alloc("x");
        let y = a.alloc("y");
        assert_eq!((a[x], a[y]), ("x", "y"));
        assert_ne!(x, y);
        assert_eq!(a.len(), 2);
        a[y] = "z";
        assert_eq!(a[y], "z");
    }
}
