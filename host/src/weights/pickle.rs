//! A decoder for the pickle subset `torch.save` writes, bounded by construction.
//!
//! Objects live in one flat arena and refer to each other by index, so:
//! - nothing recurses, neither decoding nor dropping (a 300,000-deep nested list is 300,000 arena
//!   slots, not 300,000 stack frames), and the nesting depth is refused past [`MAX_DEPTH`] anyway;
//! - a memo GET pushes an index: a referenced object is shared, never copied, exactly as in
//!   Python (a SETITEM on a memoized dict is visible through every reference);
//! - every opcode adds at most one arena slot and one container element, so memory is linear in
//!   the pickle's length, and the pickle is itself capped ([`MAX_PICKLE_BYTES`]);
//! - strings are spans of the input (zero-copy), their lengths checked against the bytes left.
//!
//! Opcodes outside the subset are refused with their offset. The subset: protocol 2 as torch
//! writes it (PROTO, EMPTY_DICT/LIST/TUPLE, MARK, BINUNICODE, BININT/1/2, LONG1, BINFLOAT,
//! NEWTRUE/FALSE, NONE, TUPLE/1/2/3, SETITEM(S), APPEND(S), BINPUT/LONG_BINPUT, BINGET/
//! LONG_BINGET, GLOBAL, REDUCE, NEWOBJ, BUILD, BINPERSID, STOP), plus the cheap protocol-4
//! additions (FRAME, MEMOIZE, SHORT_BINUNICODE, BINUNICODE8, STACK_GLOBAL) and DICT, LIST, POP,
//! POP_MARK, DUP, BINBYTES, SHORT_BINBYTES.

use std::collections::HashMap;

/// Longest pickle accepted (SwinIR-light's is 72 KB; a large model's is a few MB).
pub const MAX_PICKLE_BYTES: usize = 16 << 20;
/// Most objects accepted (SwinIR-light's pickle makes about 12,000). With the arena's 32 bytes
/// a slot, objects take at most 128 MiB.
pub const MAX_OBJECTS: usize = 1 << 22;
/// Deepest object nesting accepted (a torch state dict nests about 7 deep).
pub const MAX_DEPTH: u32 = 100;

/// Index of an object in [`Pickle::objects`].
pub type ObjId = u32;

/// A byte range of the pickle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: usize,
    len: usize,
}

/// A decoded object. Containers hold indices into the arena.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A LONG1 integer of more than 8 bytes (never a valid size or offset).
    BigInt,
    /// A float.
    Float(f64),
    /// A UTF-8 string (validated).
    Str(Span),
    /// A bytes object.
    Bytes(Span),
    /// `module.name` from GLOBAL or STACK_GLOBAL.
    Global {
        /// Module name.
        module: Span,
        /// Attribute name.
        name: Span,
    },
    /// A tuple.
    Tuple(Vec<ObjId>),
    /// A list.
    List(Vec<ObjId>),
    /// A dict, in insertion order (duplicate keys kept; readers take the last, as Python does).
    Dict(Vec<(ObjId, ObjId)>),
    /// `callable(*args)`, from REDUCE or NEWOBJ.
    Reduce {
        /// The callable.
        callable: ObjId,
        /// Its argument tuple.
        args: ObjId,
    },
    /// An object with state set by BUILD (other than a dict's attributes, which are dropped).
    Built {
        /// The object.
        obj: ObjId,
        /// The state.
        state: ObjId,
    },
    /// `persistent_load(pid)`, from BINPERSID.
    PersistentId(ObjId),
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    /// Byte offset of the opcode.
    pub offset: usize,
    /// What went wrong.
    pub what: String,
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pickle byte {}: {}", self.offset, self.what)
    }
}

/// A decoded pickle: the arena and the object STOP returned.
pub struct Pickle<'a> {
    input: &'a [u8],
    objects: Vec<Obj>,
    root: ObjId,
}

impl<'a> Pickle<'a> {
    /// The object the pickle evaluates to.
    pub fn root(&self) -> ObjId {
        self.root
    }

    /// Object `id` (every id reachable from [`Pickle::root`] is valid).
    pub fn get(&self, id: ObjId) -> &Obj {
        &self.objects[id as usize]
    }

    /// The text of a string object, `None` for any other object.
    pub fn str(&self, id: ObjId) -> Option<&'a str> {
        match self.get(id) {
            Obj::Str(s) => Some(self.text(*s)),
            _ => None,
        }
    }

    /// The text of a span (validated UTF-8 when it was decoded).
    pub fn text(&self, s: Span) -> &'a str {
        std::str::from_utf8(&self.input[s.start..s.start + s.len]).unwrap_or("")
    }

    /// `(module, name)` of a GLOBAL object.
    pub fn global(&self, id: ObjId) -> Option<(&'a str, &'a str)> {
        match self.get(id) {
            Obj::Global { module, name } => Some((self.text(*module), self.text(*name))),
            _ => None,
        }
    }

    /// The items of a tuple object.
    pub fn tuple(&self, id: ObjId) -> Option<&[ObjId]> {
        match self.get(id) {
            Obj::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// The items of a dict object.
    pub fn dict(&self, id: ObjId) -> Option<&[(ObjId, ObjId)]> {
        match self.get(id) {
            Obj::Dict(v) => Some(v),
            _ => None,
        }
    }

    /// The value of an integer object.
    pub fn int(&self, id: ObjId) -> Option<i64> {
        match self.get(id) {
            Obj::Int(v) => Some(*v),
            _ => None,
        }
    }
}

/// Decoder state: the arena, per-object nesting depth, the stack, the mark positions, the memo.
struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    /// Offset of the opcode being decoded (for errors).
    op_at: usize,
    objects: Vec<Obj>,
    depth: Vec<u32>,
    stack: Vec<ObjId>,
    marks: Vec<usize>,
    memo: HashMap<u32, ObjId>,
}

/// Decodes `input` up to its STOP opcode.
pub fn decode(input: &[u8]) -> Result<Pickle<'_>, PickleError> {
    if input.len() > MAX_PICKLE_BYTES {
        return Err(PickleError {
            offset: 0,
            what: format!(
                "{} bytes, more than the {MAX_PICKLE_BYTES} accepted",
                input.len()
            ),
        });
    }
    let mut d = Decoder {
        input,
        pos: 0,
        op_at: 0,
        objects: Vec::new(),
        depth: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = d.run()?;
    Ok(Pickle {
        input,
        objects: d.objects,
        root,
    })
}

impl<'a> Decoder<'a> {
    fn err<T>(&self, what: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            offset: self.op_at,
            what: what.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        match self.pos.checked_add(n).filter(|&e| e <= self.input.len()) {
            Some(end) => {
                let s = &self.input[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => self.err(format!(
                "needs {n} more bytes, {} left (truncated pickle)",
                self.input.len() - self.pos
            )),
        }
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// Adds an object whose children are `children`; refuses nesting past [`MAX_DEPTH`].
    fn alloc(&mut self, obj: Obj, children: &[ObjId]) -> Result<ObjId, PickleError> {
        let d = 1 + children
            .iter()
            .map(|&c| self.depth[c as usize])
            .max()
            .unwrap_or(0);
        if d > MAX_DEPTH {
            return self.err(format!("objects nested deeper than {MAX_DEPTH} levels"));
        }
        self.slot(obj, d)
    }

    /// Stores `obj` with nesting depth `d` in a new arena slot.
    fn slot(&mut self, obj: Obj, d: u32) -> Result<ObjId, PickleError> {
        if self.objects.len() >= MAX_OBJECTS {
            return self.err(format!("more than {MAX_OBJECTS} objects"));
        }
        let id = self.objects.len() as ObjId;
        self.objects.push(obj);
        self.depth.push(d);
        Ok(id)
    }

    fn push_new(&mut self, obj: Obj, children: &[ObjId]) -> Result<(), PickleError> {
        let id = self.alloc(obj, children)?;
        self.stack.push(id);
        Ok(())
    }

    /// The lowest stack position the current mark frame may pop.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<ObjId, PickleError> {
        if self.stack.len() <= self.floor() {
            return self.err("stack underflow");
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self) -> Result<ObjId, PickleError> {
        if self.stack.len() <= self.floor() {
            return self.err("stack underflow");
        }
        Ok(*self.stack.last().expect("checked above"))
    }

    fn pop_mark(&mut self) -> Result<Vec<ObjId>, PickleError> {
        match self.marks.pop() {
            Some(m) => Ok(self.stack.split_off(m)),
            None => self.err("no MARK to pop to"),
        }
    }

    /// Records that `parent` now contains `child` (depth of a mutated container).
    fn contain(&mut self, parent: ObjId, child: ObjId) -> Result<(), PickleError> {
        let d = self.depth[child as usize] + 1;
        if d > MAX_DEPTH {
            return self.err(format!("objects nested deeper than {MAX_DEPTH} levels"));
        }
        let p = &mut self.depth[parent as usize];
        *p = (*p).max(d);
        Ok(())
    }

    fn string(&mut self, len: u64, bytes: bool) -> Result<(), PickleError> {
        let left = (self.input.len() - self.pos) as u64;
        if len > left {
            return self.err(format!(
                "string of {len} bytes, only {left} left (truncated pickle)"
            ));
        }
        let start = self.pos;
        let s = self.take(len as usize)?;
        let span = Span {
            start,
            len: s.len(),
        };
        if bytes {
            return self.push_new(Obj::Bytes(span), &[]);
        }
        if std::str::from_utf8(s).is_err() {
            return self.err("string is not valid UTF-8");
        }
        self.push_new(Obj::Str(span), &[])
    }

    /// A newline-terminated line of GLOBAL.
    fn line(&mut self) -> Result<Span, PickleError> {
        let rest = &self.input[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return self.err("GLOBAL name without a newline (truncated pickle)");
        };
        if std::str::from_utf8(&rest[..n]).is_err() {
            return self.err("GLOBAL name is not valid UTF-8");
        }
        let span = Span {
            start: self.pos,
            len: n,
        };
        self.pos += n + 1;
        Ok(span)
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(&id) => {
                self.stack.push(id);
                Ok(())
            }
            None => self.err(format!("memo key {key} was never stored")),
        }
    }

    fn tuple_of(&mut self, n: usize) -> Result<(), PickleError> {
        let mut items = vec![0; n];
        for i in (0..n).rev() {
            items[i] = self.pop()?;
        }
        self.push_new(Obj::Tuple(items.clone()), &items)
    }

    fn set_items(&mut self, items: Vec<ObjId>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.err(format!("odd number of items ({}) for a dict", items.len()));
        }
        let dict = self.top()?;
        for &c in &items {
            self.contain(dict, c)?;
        }
        match &mut self.objects[dict as usize] {
            Obj::Dict(d) => {
                d.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
                Ok(())
            }
            other => {
                let kind = kind(other);
                self.err(format!("SETITEM(S) on a {kind}, not a dict"))
            }
        }
    }

    fn append_items(&mut self, items: Vec<ObjId>) -> Result<(), PickleError> {
        let list = self.top()?;
        for &c in &items {
            self.contain(list, c)?;
        }
        match &mut self.objects[list as usize] {
            Obj::List(l) => {
                l.extend(items);
                Ok(())
            }
            other => {
                let kind = kind(other);
                self.err(format!("APPEND(S) on a {kind}, not a list"))
            }
        }
    }

    fn reduce(&mut self) -> Result<(), PickleError> {
        let args = self.pop()?;
        let callable = self.pop()?;
        // `collections.OrderedDict()` (every state dict): a dict that SETITEMS then fills.
        let is_dict_class = matches!(
            self.objects[callable as usize],
            Obj::Global { module, name }
                if self.text_of(module) == "collections"
                    && matches!(self.text_of(name), "OrderedDict" | "defaultdict")
        );
        if is_dict_class {
            return self.push_new(Obj::Dict(Vec::new()), &[]);
        }
        self.push_new(Obj::Reduce { callable, args }, &[callable, args])
    }

    fn text_of(&self, s: Span) -> &'a str {
        std::str::from_utf8(&self.input[s.start..s.start + s.len]).unwrap_or("")
    }

    fn build(&mut self) -> Result<(), PickleError> {
        let state = self.pop()?;
        let obj = self.top()?;
        if matches!(self.objects[obj as usize], Obj::Dict(_)) {
            // A dict's BUILD state sets attributes (an OrderedDict's `_metadata`): not items.
            return Ok(());
        }
        // Keep `obj`'s id (memo references see the built object, as in Python): move the
        // unbuilt object to a new slot and put the Built wrapper in its place.
        let inner_depth = self.depth[obj as usize];
        let moved = self.slot(Obj::None, inner_depth)?;
        let inner = std::mem::replace(&mut self.objects[obj as usize], Obj::None);
        self.objects[moved as usize] = inner;
        self.objects[obj as usize] = Obj::Built { obj: moved, state };
        self.contain(obj, moved)?;
        self.contain(obj, state)
    }

    fn run(&mut self) -> Result<ObjId, PickleError> {
        loop {
            self.op_at = self.pos;
            let op = match self.take(1) {
                Ok(b) => b[0],
                Err(_) => return self.err("ends without a STOP opcode (truncated pickle)"),
            };
            match op {
                0x80 => {
                    let v = self.u8()?;
                    if v > 5 {
                        return self.err(format!("pickle protocol {v}, at most 5 is known"));
                    }
                }
                0x95 => {
                    self.take(8)?;
                }
                b'.' => {
                    let root = self.pop()?;
                    return Ok(root);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    if self.stack.len() > self.floor() {
                        self.stack.pop();
                    } else if self.marks.pop().is_none() {
                        return self.err("POP on an empty stack");
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.stack.push(t);
                }
                b'}' => self.push_new(Obj::Dict(Vec::new()), &[])?,
                b']' => self.push_new(Obj::List(Vec::new()), &[])?,
                b')' => self.push_new(Obj::Tuple(Vec::new()), &[])?,
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push_new(Obj::Dict(Vec::new()), &[])?;
                    self.set_items(items)?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_new(Obj::List(Vec::new()), &[])?;
                    self.append_items(items)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_new(Obj::Tuple(items.clone()), &items)?;
                }
                0x85 => self.tuple_of(1)?,
                0x86 => self.tuple_of(2)?,
                0x87 => self.tuple_of(3)?,
                b'N' => self.push_new(Obj::None, &[])?,
                0x88 => self.push_new(Obj::Bool(true), &[])?,
                0x89 => self.push_new(Obj::Bool(false), &[])?,
                b'K' => {
                    let v = self.u8()?;
                    self.push_new(Obj::Int(i64::from(v)), &[])?
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push_new(Obj::Int(i64::from(v)), &[])?
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push_new(Obj::Int(i64::from(v)), &[])?
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let b = self.take(n)?;
                    let obj = if n > 8 {
                        Obj::BigInt
                    } else if n == 0 {
                        Obj::Int(0)
                    } else {
                        // Little-endian two's complement, sign-extended from its top byte.
                        let fill = if b[n - 1] & 0x80 != 0 { 0xFF } else { 0 };
                        let mut a = [fill; 8];
                        a[..n].copy_from_slice(b);
                        Obj::Int(i64::from_le_bytes(a))
                    };
                    self.push_new(obj, &[])?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.push_new(Obj::Float(v), &[])?
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.array()?);
                    self.string(u64::from(n), false)?
                }
                0x8c => {
                    let n = self.u8()?;
                    self.string(u64::from(n), false)?
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.array()?);
                    self.string(n, false)?
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.array()?);
                    self.string(u64::from(n), true)?
                }
                b'C' => {
                    let n = self.u8()?;
                    self.string(u64::from(n), true)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append_items(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append_items(items)?;
                }
                // BINPUT, LONG_BINPUT, MEMOIZE: the top of the stack to a memo slot.
                b'q' | b'r' | 0x94 => {
                    let k = match op {
                        b'q' => u32::from(self.u8()?),
                        b'r' => u32::from_le_bytes(self.array()?),
                        _ => u32::try_from(self.memo.len()).unwrap_or(u32::MAX),
                    };
                    self.memo_put(k)?
                }
                // BINGET, LONG_BINGET: a memo slot onto the stack.
                b'h' | b'j' => {
                    let k = match op {
                        b'h' => u32::from(self.u8()?),
                        _ => u32::from_le_bytes(self.array()?),
                    };
                    self.memo_get(k)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push_new(Obj::Global { module, name }, &[])?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&self.objects[module as usize], &self.objects[name as usize]) {
                        (Obj::Str(m), Obj::Str(n)) => {
                            let (module, name) = (*m, *n);
                            self.push_new(Obj::Global { module, name }, &[])?
                        }
                        _ => return self.err("STACK_GLOBAL of non-strings"),
                    }
                }
                b'R' | 0x81 => self.reduce()?,
                b'b' => self.build()?,
                b'Q' => {
                    let pid = self.pop()?;
                    self.push_new(Obj::PersistentId(pid), &[pid])?
                }
                other => {
                    return self.err(format!(
                        "opcode 0x{other:02x} is not in the subset torch.save writes"
                    ))
                }
            }
        }
    }
}

/// A short name of an object's type, for messages.
pub fn kind(o: &Obj) -> &'static str {
    match o {
        Obj::None => "None",
        Obj::Bool(_) => "bool",
        Obj::Int(_) | Obj::BigInt => "int",
        Obj::Float(_) => "float",
        Obj::Str(_) => "str",
        Obj::Bytes(_) => "bytes",
        Obj::Global { .. } => "global",
        Obj::Tuple(_) => "tuple",
        Obj::List(_) => "list",
        Obj::Dict(_) => "dict",
        Obj::Reduce { .. } => "reduce",
        Obj::Built { .. } => "built object",
        Obj::PersistentId(_) => "persistent id",
    }
}
