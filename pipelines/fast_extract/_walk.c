/* The block walk of the fast extractor, in C: one pass over lxml's libxml2 tree.
 *
 * Why C: the same walk from Python (etree.iterwalk) took 2.414 ms a page on the benchmark pages,
 * this one 0.154 ms (bench/extractors_results.json). The semantics are exactly those of
 * blocks.walk_reference (the Python version kept for parity tests):
 *
 *   - text accumulates into the open block; entering or leaving a block-level element closes it;
 *   - elements in the skip set contribute nothing (their tail text, a following sibling, does);
 *   - a block keeps its whitespace-normalised text, its holder tag index, the ancestor-tag bits,
 *     the class/id concept bits of all its ancestors, of its nearest NEAR_LEVELS elements and of its
 *     own element (the body's own are left out: they describe the page), its depth, how many
 *     non-whitespace characters sit inside <a> elements, and the non-whitespace characters (all, and
 *     inside links) of the whole parent and grandparent of the element holding it: the container
 *     the block sits in, which is what separates a paragraph of an article from an item of a menu.
 *
 *   - the block's characters are counted by class while its whitespace is normalised
 *     (chars.MEASURES: characters, words, digits, ..., sentence ends), with the class table the
 *     caller passes (chars.char_table), so no page is re-scanned in Python.
 *
 * The tag tables and the class/id classifier (a Python callable, called once per distinct value
 * and cached here) come from Python (configure()), so blocks.py stays the one place that names
 * them. Only libxml2's node structs are read (no libxml2 function is called), and the
 * element is reached through lxml's public _Element layout (lxml/etree.h: PyObject_HEAD, _doc,
 * _c_node), after a type check against lxml.etree._Element.
 *
 * The same module fills each page's block feature matrix (features(), specified by
 * features.block_features_reference) and the second stage's context columns (context(), specified
 * by features.neighbour_context_reference). The features cost 0.545 ms a page in numpy, mostly
 * per-call overhead on a page's few hundred blocks, and 0.121 ms here (bench/extractors_results.json).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <libxml/tree.h>

typedef struct {
    PyObject_HEAD
    void *doc;
    xmlNode *c_node;
} LxmlElement;

#define F_SKIP 1
#define F_BLOCK 2
#define TABLE_SIZE 512
#define MAX_TAG 24
#define NEAR_LEVELS 4
#define ATTR_BYTES 1023
#define N_WALK 12     /* the walk's own columns (blocks.ROW_FIELDS) */
#define N_MEASURES 10 /* then the character measures (chars.MEASURES) */
#define N_FIELDS (N_WALK + N_MEASURES)
#define N_COUNTED 6
#define CACHE_SIZE 65536 /* class/id values remembered, by 64-bit hash */

typedef struct {
    char name[MAX_TAG];
    int used;
    int flags;
    uint64_t ancestor_bit;
    int holder;
} TagEntry;

static TagEntry tags[TABLE_SIZE];
static PyObject *classify_attr = NULL; /* bytes -> int: the concept bits of one class/id value */

/* Class/id values repeat within a page and across sites: their bits are remembered by a 64-bit
 * FNV-1a hash of the value (a collision between two distinct values is a 1-in-2^64 event). */
typedef struct {
    uint64_t hash, bits;
    int used;
} CacheEntry;
static CacheEntry cache[CACHE_SIZE];

/* Character-class bits (chars.py): sentence end, terminal, then the COUNTED classes. */
static uint16_t bit_sentence, bit_terminal, bit_counted[N_COUNTED];
static PyTypeObject *element_type = NULL;
static int configured = 0;

static unsigned tag_hash(const char *s) {
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h & (TABLE_SIZE - 1);
}

static TagEntry *tag_slot(const char *name, int create) {
    if (strlen(name) >= MAX_TAG) return NULL;
    unsigned h = tag_hash(name);
    for (int i = 0; i < TABLE_SIZE; i++) {
        TagEntry *e = &tags[(h + i) & (TABLE_SIZE - 1)];
        if (!e->used) {
            if (!create) return NULL;
            e->used = 1;
            strcpy(e->name, name);
            e->holder = -1;
            return e;
        }
        if (strcmp(e->name, name) == 0) return e;
    }
    return NULL;
}

/* ---- growable buffers ---------------------------------------------------------------------- */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static int buf_add(Buf *b, const char *s, Py_ssize_t n) {
    if (b->len + n > b->cap) {
        Py_ssize_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *p = PyMem_Realloc(b->data, cap);
        if (!p) return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

/* ---- UTF-8 whitespace as Python's str.isspace() sees it ------------------------------------- */

/* Length in bytes of the whitespace character at s (0 when s does not start with one). */
static int space_len(const unsigned char *s, const unsigned char *end) {
    unsigned char c = s[0];
    if (c < 0x80) return (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) ? 1 : 0;
    if (c == 0xC2 && s + 1 < end) return (s[1] == 0x85 || s[1] == 0xA0) ? 2 : 0;
    if (c == 0xE1 && s + 2 < end) return (s[1] == 0x9A && s[2] == 0x80) ? 3 : 0;
    if (c == 0xE2 && s + 2 < end) {
        if (s[1] == 0x80 && ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
            return 3;
        if (s[1] == 0x81 && s[2] == 0x9F) return 3;
        return 0;
    }
    if (c == 0xE3 && s + 2 < end) return (s[1] == 0x80 && s[2] == 0x80) ? 3 : 0;
    return 0;
}

static Py_ssize_t nonspace_chars(const unsigned char *s, Py_ssize_t n) {
    const unsigned char *end = s + n;
    Py_ssize_t count = 0;
    while (s < end) {
        int w = space_len(s, end);
        if (w) { s += w; continue; }
        if ((*s & 0xC0) != 0x80) count++;
        s++;
    }
    return count;
}

/* ---- the walk ------------------------------------------------------------------------------ */

typedef struct {
    int holder, depth;
    uint64_t anc, cls, near, own;
    int64_t parent, grand; /* element ids of the holder's parent and grandparent (-1: none) */
} Ctx;

typedef struct {
    int kind; /* 0: inline, 1: block, 2: <a>, 3: img/wbr */
    Ctx saved;
    uint64_t anc, cls, own;
    int64_t id;
} Frame;

typedef struct {
    Buf text;        /* the open block's raw text */
    Buf norm;        /* scratch for normalising it */
    Buf rows;        /* int64 x N_FIELDS per block */
    Buf elems;       /* int64 x 2 per entered element: non-whitespace chars, of which inside links */
    PyObject *texts; /* list of str */
    Py_ssize_t link_chars;
    Ctx ctx;
    const uint16_t *table; /* code point -> class bits (chars.char_table) */
} Walk;

/* Decode one UTF-8 character at s (advancing *len bytes); invalid bytes decode to U+FFFD, one each. */
static uint32_t decode_utf8(const unsigned char *s, const unsigned char *end, int *len) {
    unsigned char c = s[0];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || s + n > end) { *len = 1; return 0xFFFD; }
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80) { *len = 1; return 0xFFFD; }
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    *len = n;
    return cp > 0x10FFFF ? 0xFFFD : cp;
}

static int close_block(Walk *w) {
    Py_ssize_t link = w->link_chars;
    w->link_chars = 0;
    if (!w->text.len) return 0;
    const unsigned char *s = (const unsigned char *)w->text.data, *end = s + w->text.len;
    w->norm.len = 0;
    int pending_space = 0, candidate = 0; /* candidate: the last character may end a sentence */
    int64_t m[N_MEASURES] = {0};          /* chars, words, counted classes, sentence ends, ends terminal */
    uint16_t cls = 0;
    while (s < end) {
        int n = space_len(s, end);
        if (n) { s += n; pending_space = w->norm.len > 0; continue; }
        const unsigned char *start = s;
        if (pending_space) {
            if (buf_add(&w->norm, " ", 1) < 0) return -1;
            m[0]++;
            m[1]++;
            m[8] += candidate; /* followed by a space */
            candidate = 0;
            pending_space = 0;
        }
        while (s < end && !space_len(s, end)) {
            int len;
            uint32_t cp = decode_utf8(s, end, &len);
            s += len;
            cls = w->table[cp];
            m[0]++;
            for (int k = 0; k < N_COUNTED; k++) m[2 + k] += (cls & bit_counted[k]) != 0;
            candidate = 0;
            if (cls & bit_sentence) {
                if (cp > 0x3000) m[8]++;
                else candidate = 1;
            }
        }
        if (buf_add(&w->norm, (const char *)start, s - start) < 0) return -1;
    }
    w->text.len = 0;
    if (!w->norm.len) return 0;
    m[1]++;             /* words: spaces + 1 */
    m[8] += candidate;  /* followed by the block's end */
    m[9] = (cls & bit_terminal) != 0;
    PyObject *str = PyUnicode_DecodeUTF8(w->norm.data, w->norm.len, "replace");
    if (!str) return -1;
    int rc = PyList_Append(w->texts, str);
    Py_DECREF(str);
    if (rc < 0) return -1;
    /* the container columns hold element ids until the walk ends and their totals are known */
    int64_t row[N_FIELDS] = {w->ctx.holder, (int64_t)w->ctx.anc, (int64_t)w->ctx.cls, (int64_t)w->ctx.near,
                             (int64_t)w->ctx.own, w->ctx.depth, link < m[0] ? link : m[0],
                             w->ctx.parent, 0, w->ctx.grand, 0, w->ctx.parent};
    memcpy(row + N_WALK, m, sizeof m);
    return buf_add(&w->rows, (const char *)row, sizeof row);
}

/* The concept bits of one attribute value (-1 with an exception set on failure). */
static int attr_bits(const char *v, uint64_t *bits) {
    size_t n = strlen(v);
    if (n > ATTR_BYTES) n = ATTR_BYTES;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)v[i]) * 1099511628211ull;
    CacheEntry *e = &cache[h & (CACHE_SIZE - 1)];
    if (!(e->used && e->hash == h)) {
        PyObject *key = PyBytes_FromStringAndSize(v, (Py_ssize_t)n);
        if (!key) return -1;
        PyObject *val = PyObject_CallOneArg(classify_attr, key);
        Py_DECREF(key);
        if (!val) return -1;
        unsigned long long b = PyLong_AsUnsignedLongLongMask(val);
        Py_DECREF(val);
        if (b == (unsigned long long)-1 && PyErr_Occurred()) return -1;
        e->hash = h; /* a different value in the same slot is replaced: the cache stays bounded */
        e->bits = b;
        e->used = 1;
    }
    *bits |= e->bits;
    return 0;
}

/* The concept bits of an element's class and id values. */
static int element_bits(xmlNode *node, uint64_t *bits) {
    *bits = 0;
    for (xmlAttr *a = node->properties; a; a = a->next) {
        if (!a->name || !a->children || !a->children->content || !a->children->content[0]) continue;
        if (strcmp((const char *)a->name, "class") != 0 && strcmp((const char *)a->name, "id") != 0) continue;
        if (attr_bits((const char *)a->children->content, bits) < 0) return -1;
    }
    return 0;
}

/* Add a text node's content to the open block and to the totals of the element holding it. */
static int add_text(Walk *w, const xmlChar *content, int links_open, int64_t holder_id) {
    if (!content) return 0;
    Py_ssize_t n = (Py_ssize_t)strlen((const char *)content);
    Py_ssize_t visible = nonspace_chars(content, n);
    int64_t *totals = (int64_t *)w->elems.data + 2 * holder_id;
    totals[0] += visible;
    if (links_open) {
        w->link_chars += visible;
        totals[1] += visible;
    }
    return buf_add(&w->text, (const char *)content, n);
}

static PyObject *walk(PyObject *self, PyObject *args) {
    PyObject *arg;
    Py_buffer table;
    if (!PyArg_ParseTuple(args, "Oy*", &arg, &table)) return NULL;
    if (!configured || !PyObject_TypeCheck(arg, element_type) || table.len != 0x110000 * 2) {
        PyErr_SetString(configured ? PyExc_TypeError : PyExc_RuntimeError,
                        configured ? "walk(element, table): an lxml element and a uint16 table of 0x110000"
                                   : "_walk.configure() was not called");
        PyBuffer_Release(&table);
        return NULL;
    }
    xmlNode *root = ((LxmlElement *)arg)->c_node;
    Walk w;
    memset(&w, 0, sizeof w);
    w.table = (const uint16_t *)table.buf;
    w.texts = PyList_New(0);
    if (!w.texts) { PyBuffer_Release(&table); return NULL; }
    TagEntry *body = tag_slot("body", 0);
    w.ctx.holder = body ? body->holder : -1;
    w.ctx.parent = w.ctx.grand = -1;
    Frame *stack = NULL;
    Py_ssize_t top = 0, cap = 0;
    uint64_t anc = 0, cls = 0;
    int depth = 0, links_open = 0, failed = 0;
    xmlNode *node = root;
    while (node && !failed) {
        int descend = 0;
        if (node->type == XML_ELEMENT_NODE) {
            const char *name = node->name ? (const char *)node->name : "";
            TagEntry *e = tag_slot(name, 0);
            if (!(e && (e->flags & F_SKIP))) {
                uint64_t own = 0;
                if (node != root && element_bits(node, &own) < 0) { failed = 1; break; }
                if (top == cap) {
                    cap = cap ? cap * 2 : 64;
                    Frame *p = PyMem_Realloc(stack, cap * sizeof(Frame));
                    if (!p) { failed = 1; PyErr_NoMemory(); break; }
                    stack = p;
                }
                Frame *f = &stack[top++];
                int block = e && (e->flags & F_BLOCK);
                f->kind = block ? 1 : strcmp(name, "a") == 0 ? 2
                          : (strcmp(name, "img") == 0 || strcmp(name, "wbr") == 0) ? 3 : 0;
                f->saved = w.ctx;
                f->anc = anc;
                f->cls = cls;
                f->own = own;
                f->id = (int64_t)(w.elems.len / (2 * sizeof(int64_t)));
                int64_t zero[2] = {0, 0};
                if (buf_add(&w.elems, (const char *)zero, sizeof zero) < 0) { failed = 1; break; }
                anc |= e ? e->ancestor_bit : 0;
                cls |= own;
                depth++;
                if (block) {
                    if (close_block(&w) < 0) { failed = 1; break; }
                    w.ctx.holder = e->holder;
                    w.ctx.anc = anc;
                    w.ctx.cls = cls;
                    w.ctx.near = 0;
                    for (Py_ssize_t k = top - 1; k >= 0 && k >= top - NEAR_LEVELS; k--) w.ctx.near |= stack[k].own;
                    w.ctx.own = own;
                    w.ctx.depth = depth;
                    w.ctx.parent = top >= 2 ? stack[top - 2].id : -1;
                    w.ctx.grand = top >= 3 ? stack[top - 3].id : -1;
                } else if (f->kind == 2) {
                    links_open++;
                }
                descend = 1;
            }
        } else if (node->type == XML_TEXT_NODE || node->type == XML_CDATA_SECTION_NODE) {
            if (add_text(&w, node->content, links_open, stack[top - 1].id) < 0) { failed = 1; break; }
        }
        if (descend && node->children) { node = node->children; continue; }
        /* leave: this element if it was entered, then every parent whose last child this was */
        for (;;) {
            if (descend) {
                Frame *f = &stack[--top];
                if (top > 0) { /* an element's text counts in its parent's too */
                    int64_t *mine = (int64_t *)w.elems.data + 2 * f->id;
                    int64_t *up = (int64_t *)w.elems.data + 2 * stack[top - 1].id;
                    up[0] += mine[0];
                    up[1] += mine[1];
                }
                anc = f->anc;
                cls = f->cls;
                depth--;
                if (f->kind == 1) {
                    if (close_block(&w) < 0) { failed = 1; break; }
                    w.ctx = f->saved;
                } else if (f->kind == 2) {
                    links_open--;
                } else if (f->kind == 3) {
                    if (buf_add(&w.text, " ", 1) < 0) { failed = 1; break; }
                }
            }
            if (node == root) { node = NULL; break; }
            if (node->next) { node = node->next; break; }
            node = node->parent;
            descend = 1; /* a parent reached from its last child was entered */
        }
    }
    if (!failed && close_block(&w) < 0) failed = 1;
    if (!failed) { /* container ids -> container totals */
        int64_t *rows = (int64_t *)w.rows.data, *elems = (int64_t *)w.elems.data;
        Py_ssize_t n_rows = w.rows.len / (N_FIELDS * sizeof(int64_t));
        for (Py_ssize_t i = 0; i < n_rows; i++) {
            int64_t *row = rows + i * N_FIELDS;
            for (int k = 7; k <= 9; k += 2) {
                int64_t id = row[k];
                row[k] = id >= 0 ? elems[2 * id] : 0;
                row[k + 1] = id >= 0 ? elems[2 * id + 1] : 0;
            }
        }
    }
    PyBuffer_Release(&table);
    PyMem_Free(stack);
    PyMem_Free(w.elems.data);
    PyMem_Free(w.text.data);
    PyMem_Free(w.norm.data);
    PyObject *result = NULL;
    if (!failed) {
        PyObject *rows = PyBytes_FromStringAndSize(w.rows.data ? w.rows.data : "", w.rows.len);
        if (rows) result = Py_BuildValue("(NN)", w.texts, rows);
        else Py_DECREF(w.texts);
    } else {
        Py_DECREF(w.texts);
    }
    PyMem_Free(w.rows.data);
    return result;
}

/* ---- block features (features.block_features_reference is the specification) ---------------- */

/* The stop words of the languages the model reads, in an open-addressing table keyed by a 64-bit
 * FNV-1a hash of their code points; a hit is confirmed by comparing the code points, so the count
 * is exact. Built once per model (stop_table()), handed to features() as a capsule. */
typedef struct {
    Py_ssize_t size; /* a power of two, at least twice the words */
    uint64_t *hashes;
    PyObject **words; /* borrowed from `owner`; NULL: an empty slot */
    PyObject *owner;  /* a list holding the words */
} StopTable;

static uint64_t span_hash(int kind, const void *data, Py_ssize_t start, Py_ssize_t end) {
    uint64_t h = 14695981039346656037ull;
    for (Py_ssize_t i = start; i < end; i++) h = (h ^ PyUnicode_READ(kind, data, i)) * 1099511628211ull;
    return h;
}

static void stop_table_free(PyObject *capsule) {
    StopTable *t = PyCapsule_GetPointer(capsule, "cptcorpus_walk.StopTable");
    if (!t) return;
    PyMem_Free(t->hashes);
    PyMem_Free(t->words);
    Py_XDECREF(t->owner);
    PyMem_Free(t);
}

/* stop_table(words) -> capsule: words is an iterable of lowercase str. */
static PyObject *stop_table(PyObject *self, PyObject *arg) {
    PyObject *owner = PySequence_List(arg);
    if (!owner) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(owner), size = 16;
    while (size < 2 * n) size *= 2;
    StopTable *t = PyMem_Calloc(1, sizeof(StopTable));
    if (t) {
        t->hashes = PyMem_Calloc(size, sizeof(uint64_t));
        t->words = PyMem_Calloc(size, sizeof(PyObject *));
    }
    if (!t || !t->hashes || !t->words) {
        if (t) { PyMem_Free(t->hashes); PyMem_Free(t->words); PyMem_Free(t); }
        Py_DECREF(owner);
        return PyErr_NoMemory();
    }
    t->size = size;
    t->owner = owner;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyList_GET_ITEM(owner, i);
        if (!PyUnicode_Check(w)) {
            PyErr_SetString(PyExc_TypeError, "stop_table: words must be str");
            Py_DECREF(owner); PyMem_Free(t->hashes); PyMem_Free(t->words); PyMem_Free(t);
            return NULL;
        }
        uint64_t h = span_hash(PyUnicode_KIND(w), PyUnicode_DATA(w), 0, PyUnicode_GET_LENGTH(w));
        Py_ssize_t j = (Py_ssize_t)(h & (uint64_t)(size - 1));
        while (t->words[j] && PyUnicode_Compare(t->words[j], w) != 0) j = (j + 1) & (size - 1);
        t->hashes[j] = h;
        t->words[j] = w;
    }
    PyObject *capsule = PyCapsule_New(t, "cptcorpus_walk.StopTable", stop_table_free);
    if (!capsule) { Py_DECREF(owner); PyMem_Free(t->hashes); PyMem_Free(t->words); PyMem_Free(t); }
    return capsule;
}

static int is_stop(const StopTable *t, int kind, const void *data, Py_ssize_t start, Py_ssize_t end) {
    uint64_t h = span_hash(kind, data, start, end);
    for (Py_ssize_t j = (Py_ssize_t)(h & (uint64_t)(t->size - 1)); t->words[j]; j = (j + 1) & (t->size - 1)) {
        PyObject *w = t->words[j];
        if (t->hashes[j] != h || PyUnicode_GET_LENGTH(w) != end - start) continue;
        int wkind = PyUnicode_KIND(w);
        const void *wdata = PyUnicode_DATA(w);
        Py_ssize_t i = 0;
        while (i < end - start && PyUnicode_READ(wkind, wdata, i) == PyUnicode_READ(kind, data, start + i)) i++;
        if (i == end - start) return 1;
    }
    return 0;
}

/* How many of a block's single-space separated tokens, lowercased as str.lower() does, are stop
 * words (-1 with an exception set). Text within Latin-1 is lowered here (there str.lower() maps
 * exactly A-Z and U+00C0-U+00DE but U+00D7, each 32 code points up); other text by str.lower(). */
static Py_ssize_t stop_count(const StopTable *t, PyObject *text, unsigned char *scratch) {
    PyObject *low = NULL;
    const void *data;
    int kind;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (PyUnicode_KIND(text) == PyUnicode_1BYTE_KIND) {
        const unsigned char *s = (const unsigned char *)PyUnicode_DATA(text);
        for (Py_ssize_t i = 0; i < n; i++) {
            unsigned char c = s[i];
            scratch[i] = ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7)) ? (unsigned char)(c + 32) : c;
        }
        data = scratch;
        kind = PyUnicode_1BYTE_KIND;
    } else {
        static PyObject *lower_name = NULL;
        if (!lower_name && !(lower_name = PyUnicode_InternFromString("lower"))) return -1;
        if (!(low = PyObject_CallMethodNoArgs(text, lower_name))) return -1;
        data = PyUnicode_DATA(low);
        kind = PyUnicode_KIND(low);
        n = PyUnicode_GET_LENGTH(low);
    }
    Py_ssize_t count = 0, start = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {
        if (i < n && PyUnicode_READ(kind, data, i) != ' ') continue;
        count += is_stop(t, kind, data, start, i);
        start = i + 1;
    }
    Py_XDECREF(low);
    return count;
}

/* The slot of each key in an open-addressing table of the distinct keys: equal keys, equal slots
 * (*size: the table's size, what per-slot sums need). NULL with an exception set. */
static Py_ssize_t *key_slots(const int64_t *keys, Py_ssize_t n, Py_ssize_t *size) {
    Py_ssize_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    int64_t *slot_key = PyMem_Malloc(cap * sizeof(int64_t));
    char *used = PyMem_Calloc(cap, 1);
    Py_ssize_t *where = PyMem_Malloc((n ? n : 1) * sizeof(Py_ssize_t));
    if (!slot_key || !used || !where) {
        PyMem_Free(slot_key); PyMem_Free(used); PyMem_Free(where);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t h = (uint64_t)keys[i] * 0x9E3779B97F4A7C15ull;
        Py_ssize_t j = (Py_ssize_t)((h >> 17) & (uint64_t)(cap - 1));
        while (used[j] && slot_key[j] != keys[i]) j = (j + 1) & (cap - 1);
        slot_key[j] = keys[i];
        used[j] = 1;
        where[i] = j;
    }
    PyMem_Free(slot_key);
    PyMem_Free(used);
    *size = cap;
    return where;
}

/* How many times each key occurs among `keys` (counts[i] for keys[i]). */
static int key_counts(const int64_t *keys, Py_ssize_t n, int64_t *counts) {
    Py_ssize_t size;
    Py_ssize_t *where = key_slots(keys, n, &size);
    int64_t *per_slot = where ? PyMem_Calloc(size, sizeof(int64_t)) : NULL;
    if (!per_slot) {
        PyMem_Free(where);
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) per_slot[where[i]]++;
    for (Py_ssize_t i = 0; i < n; i++) counts[i] = per_slot[where[i]];
    PyMem_Free(per_slot);
    PyMem_Free(where);
    return 0;
}

#define N_DENSE 39
static const int NEIGHBOURS[6] = {-3, -2, -1, 1, 2, 3};

static void fill_bits(float *x, uint64_t bits, int width) {
    for (int b = 0; b < width; b++) x[b] = (float)((bits >> b) & 1);
}

/* features(texts, rows, page_classes, stop_table, out, (n_dense, n_holder, n_ancestor, n_concepts)):
 * fill `out` (float32, len(texts) x width) with features.block_features_reference's matrix. */
static PyObject *features(PyObject *self, PyObject *args) {
    PyObject *texts, *capsule;
    Py_buffer rows_buf, out_buf;
    unsigned long long page_classes;
    int n_dense, n_holder, n_anc, n_con;
    if (!PyArg_ParseTuple(args, "O!y*KOw*(iiii)", &PyList_Type, &texts, &rows_buf, &page_classes, &capsule, &out_buf,
                          &n_dense, &n_holder, &n_anc, &n_con))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(texts), width = N_DENSE + n_holder + n_anc + 4 * (Py_ssize_t)n_con;
    const StopTable *stops = PyCapsule_GetPointer(capsule, "cptcorpus_walk.StopTable");
    PyObject *result = NULL;
    double *dbl = NULL;
    int64_t *ints = NULL;
    unsigned char *scratch = NULL;
    if (!stops) goto done;
    if (n_dense != N_DENSE || n_holder < 1 || n_anc > 64 || n_con > 64 || n_anc < 0 || n_con < 0
        || rows_buf.len != n * N_FIELDS * (Py_ssize_t)sizeof(int64_t)
        || out_buf.len != n * width * (Py_ssize_t)sizeof(float)) {
        PyErr_SetString(PyExc_ValueError, "features(): rows, out or the layout do not match the walk's");
        goto done;
    }
    const int64_t *rows = (const int64_t *)rows_buf.buf;
    float *out = (float *)out_buf.buf;
    Py_ssize_t longest = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyList_GET_ITEM(texts, i);
        if (!PyUnicode_Check(t)) { PyErr_SetString(PyExc_TypeError, "features(): texts must be str"); goto done; }
        if (PyUnicode_GET_LENGTH(t) > longest) longest = PyUnicode_GET_LENGTH(t);
    }
    dbl = PyMem_Malloc(3 * (n ? n : 1) * sizeof(double));
    ints = PyMem_Malloc(4 * (n ? n : 1) * sizeof(int64_t));
    scratch = PyMem_Malloc(longest);
    if (!dbl || !ints || !scratch) { PyErr_NoMemory(); goto done; }
    double *chars = dbl, *log_chars = dbl + n, *link = dbl + 2 * n;
    int64_t *keys = ints, *dups = ints + n, *parents = ints + 2 * n, *siblings = ints + 3 * n;
    double total = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int64_t *r = rows + i * N_FIELDS, *m = r + N_WALK;
        chars[i] = m[0] > 1 ? (double)m[0] : 1.0;
        total += chars[i];
        log_chars[i] = log1p((double)m[0]);
        link[i] = (double)r[6] / chars[i];
        Py_hash_t h = PyObject_Hash(PyList_GET_ITEM(texts, i));
        if (h == -1) goto done;
        keys[i] = (int64_t)h;
        parents[i] = r[11];
    }
    if (key_counts(keys, n, dups) < 0 || key_counts(parents, n, siblings) < 0) goto done;
    double cumulative = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int64_t *r = rows + i * N_FIELDS, *m = r + N_WALK;
        float *x = out + i * width;
        memset(x, 0, width * sizeof(float));
        double c = chars[i], words = m[1] > 1 ? (double)m[1] : 1.0;
        Py_ssize_t stop = stop_count(stops, PyList_GET_ITEM(texts, i), scratch);
        if (stop < 0) goto done;
        cumulative += c;
        x[0] = (float)log_chars[i];
        x[1] = (float)log1p((double)m[1]);
        x[2] = (float)link[i];
        for (int k = 0; k < 3; k++) x[3 + k] = (float)((double)m[2 + k] / c); /* digits, punctuation, uppercase */
        x[6] = (float)((double)m[5] / words);
        x[7] = (float)((double)m[6] / c);
        x[8] = (float)((double)stop / (double)m[1]);
        x[9] = (float)((double)m[7] / c);
        x[10] = (float)log1p((double)m[8]);
        x[11] = (float)m[9];
        x[12] = (float)((double)(r[5] < 64 ? r[5] : 64) / 64.0);
        x[13] = (float)((double)i / (double)(n - 1 > 1 ? n - 1 : 1));
        x[14] = (float)((cumulative - c / 2.0) / total);
        x[15] = (float)(c / total);
        x[16] = dups[i] > 1;
        for (int k = 0; k < 2; k++) { /* parent, grandparent */
            double box = (double)r[7 + 2 * k];
            x[17 + 3 * k] = (float)log1p(box);
            x[18 + 3 * k] = (float)((double)r[8 + 2 * k] / (box > 1.0 ? box : 1.0));
            x[19 + 3 * k] = (float)(box / total < 1.0 ? box / total : 1.0);
        }
        x[23] = (float)log1p((double)siblings[i]);
        double share = c / (double)(r[7] > 1 ? r[7] : 1);
        x[24] = (float)(share < 1.0 ? share : 1.0);
        x[25] = (float)log1p(total);
        x[26] = (float)log1p((double)n);
        for (int k = 0; k < 6; k++) {
            Py_ssize_t j = i + NEIGHBOURS[k];
            int inside = j >= 0 && j < n;
            x[27 + 2 * k] = (float)(inside ? log_chars[j] : 0.0);
            x[28 + 2 * k] = (float)(inside ? link[j] : 1.0);
        }
        x[N_DENSE + ((r[0] % n_holder) + n_holder) % n_holder] = 1.0f; /* -1 lands in the "other" column */
        float *bits = x + N_DENSE + n_holder;
        fill_bits(bits, (uint64_t)r[1], n_anc);
        for (int k = 0; k < 3; k++) fill_bits(bits + n_anc + k * n_con, (uint64_t)r[2 + k], n_con);
        fill_bits(bits + n_anc + 3 * n_con, (uint64_t)page_classes, n_con);
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(dbl);
    PyMem_Free(ints);
    PyMem_Free(scratch);
    PyBuffer_Release(&rows_buf);
    PyBuffer_Release(&out_buf);
    return result;
}

#define N_CONTEXT 12

/* context(prob, rows, out): fill `out` (float32, n x 12) with features.neighbour_context_reference's
 * columns from the first-stage probabilities (float64, n) and the walk's rows. The sums are taken in
 * numpy's order (running sums; per-container sums in block order) except the two page means, which
 * numpy sums pairwise: those agree to rounding, not bit for bit. */
static PyObject *context(PyObject *self, PyObject *args) {
    Py_buffer prob_buf, rows_buf, out_buf;
    if (!PyArg_ParseTuple(args, "y*y*w*", &prob_buf, &rows_buf, &out_buf)) return NULL;
    Py_ssize_t n = prob_buf.len / (Py_ssize_t)sizeof(double);
    PyObject *result = NULL;
    double *csum = NULL, *box_chars = NULL, *box_score = NULL;
    int64_t *parents = NULL;
    Py_ssize_t *where = NULL, size = 0;
    if (rows_buf.len != n * N_FIELDS * (Py_ssize_t)sizeof(int64_t)
        || out_buf.len != n * N_CONTEXT * (Py_ssize_t)sizeof(float)) {
        PyErr_SetString(PyExc_ValueError, "context(): prob, rows and out do not match");
        goto done;
    }
    const double *prob = (const double *)prob_buf.buf;
    const int64_t *rows = (const int64_t *)rows_buf.buf;
    float *out = (float *)out_buf.buf;
    csum = PyMem_Calloc(n + 11, sizeof(double));
    parents = PyMem_Malloc((n ? n : 1) * sizeof(int64_t));
    if (!csum || !parents) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < n; i++) parents[i] = rows[i * N_FIELDS + 11];
    if (!(where = key_slots(parents, n, &size))) goto done;
    box_chars = PyMem_Calloc(size, sizeof(double));
    box_score = PyMem_Calloc(size, sizeof(double));
    if (!box_chars || !box_score) { PyErr_NoMemory(); goto done; }
    /* csum[k]: the sum of the first k of five zeros, prob, five zeros */
    double running = 0.0, mean = 0.0, chars_total = 0.0, weighted = 0.0;
    for (Py_ssize_t k = 0; k < n + 10; k++) {
        running += (k >= 5 && k < n + 5) ? prob[k - 5] : 0.0;
        csum[k + 1] = running;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        double c = (double)rows[i * N_FIELDS + N_WALK];
        mean += prob[i];
        chars_total += c;
        weighted += prob[i] * c;
        box_chars[where[i]] += c;
        box_score[where[i]] += prob[i] * c;
    }
    mean = n ? mean / (double)n : 0.0;
    weighted = n ? weighted / chars_total : 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        float *x = out + i * N_CONTEXT;
        double c = (double)rows[i * N_FIELDS + N_WALK];
        x[0] = (float)prob[i];
        for (int k = 0; k < 6; k++) {
            Py_ssize_t j = i + NEIGHBOURS[k];
            x[1 + k] = (float)(j >= 0 && j < n ? prob[j] : 0.0);
        }
        x[7] = (float)((csum[i + 5 + 3] - csum[i + 5 - 2]) / 5.0);
        x[8] = (float)((csum[i + 5 + 6] - csum[i + 5 - 5]) / 11.0);
        x[9] = (float)mean;
        x[10] = (float)weighted;
        double others = box_chars[where[i]] - c, score = box_score[where[i]] - prob[i] * c;
        x[11] = (float)(others > 0.0 ? score / (others > 1.0 ? others : 1.0) : -1.0);
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(csum);
    PyMem_Free(parents);
    PyMem_Free(where);
    PyMem_Free(box_chars);
    PyMem_Free(box_score);
    PyBuffer_Release(&prob_buf);
    PyBuffer_Release(&rows_buf);
    PyBuffer_Release(&out_buf);
    return result;
}

/* configure(element_type, skip_tags, block_tags, ancestor_tags, holder_tags, classify_attr, char_bits)
 * char_bits: (sentence end, terminal, *counted) class bits of chars.py */
static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *etype, *skip, *block, *ancestor, *holder, *classify;
    unsigned short b[2 + N_COUNTED];
    if (!PyArg_ParseTuple(args, "O!OOOOO(HHHHHHHH)", &PyType_Type, &etype, &skip, &block, &ancestor, &holder,
                          &classify, &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &b[6], &b[7]))
        return NULL;
    bit_sentence = b[0];
    bit_terminal = b[1];
    for (int k = 0; k < N_COUNTED; k++) bit_counted[k] = b[2 + k];
    memset(cache, 0, sizeof cache);
    memset(tags, 0, sizeof tags);
    PyObject *lists[4] = {skip, block, ancestor, holder};
    for (int which = 0; which < 4; which++) {
        PyObject *seq = PySequence_Fast(lists[which], "tag lists must be sequences of str");
        if (!seq) return NULL;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        if (which == 2 && n > 64) { Py_DECREF(seq); PyErr_SetString(PyExc_ValueError, "over 64 ancestor tags"); return NULL; }
        for (Py_ssize_t i = 0; i < n; i++) {
            const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
            TagEntry *e = name ? tag_slot(name, 1) : NULL;
            if (!e) {
                Py_DECREF(seq);
                if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "tag name too long: %s", name);
                return NULL;
            }
            if (which == 0) e->flags |= F_SKIP;
            else if (which == 1) e->flags |= F_BLOCK;
            else if (which == 2) e->ancestor_bit = (uint64_t)1 << i;
            else e->holder = (int)i;
        }
        Py_DECREF(seq);
    }
    if (!PyCallable_Check(classify)) { PyErr_SetString(PyExc_TypeError, "classify_attr must be callable"); return NULL; }
    Py_XSETREF(classify_attr, Py_NewRef(classify));
    Py_XSETREF(element_type, (PyTypeObject *)Py_NewRef(etype));
    configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS, "walk(body, table) -> (texts, rows): the page's blocks (see blocks.walk_reference)."},
    {"configure", configure, METH_VARARGS, "Set the element type, the tag tables and the class/id classifier."},
    {"stop_table", stop_table, METH_O, "stop_table(words) -> the lookup table features() reads (a capsule)."},
    {"features", features, METH_VARARGS,
     "features(texts, rows, page_classes, stop_table, out, layout): fill the block feature matrix."},
    {"context", context, METH_VARARGS, "context(prob, rows, out): fill the second stage's context columns."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cptcorpus_walk", "The fast extractor's block walk in C.", -1, methods};

PyMODINIT_FUNC PyInit_cptcorpus_walk(void) { return PyModule_Create(&module); }
