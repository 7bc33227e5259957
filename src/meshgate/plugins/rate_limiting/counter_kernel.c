/* counter_kernel: the node counter store's check-and-count (CounterStore.hit) in C.
 *
 * Same table, same semantics as the Python code in shared_counters.py (its docstring has the
 * layout): one call takes the stripe's robust process-shared mutex, finds or claims the slot
 * of every period, counts the request when no period is exhausted, and lets the mutex go.
 * The Python version pays a ctypes call for each of the lock and the unlock and a struct
 * unpack/pack per slot; here they are a few loads and stores.  Built by `make native`
 * (scripts/build_native.py) and used only with the compiled engine; the Python version is the
 * reference, and tests/plugins/test_rate_limiting_kernel.py holds the two to the same results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define SLOT_SIZE 32 /* fingerprint u64 | window_start i64 | expires i64 | count i64, LE */
#define PROBES 8
#define MUTEX_SIZE 64
#define MAX_PERIODS 16

typedef struct {
    PyObject_HEAD
    Py_buffer view; /* pins the mapping while the table lives (or until release) */
    int has_view;
    Py_ssize_t data_start, stripes, per_stripe;
    Py_ssize_t mutexes; /* offset of the mutex area, or -1: no locking (private memory) */
} Table;

typedef struct {
    uint64_t fingerprint;
    int64_t window, expires, count;
} Slot;

static inline uint64_t le64(uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return __builtin_bswap64(v);
#else
    return v;
#endif
}

static inline void read_slot(const char *at, Slot *slot) {
    uint64_t raw[4];
    memcpy(raw, at, sizeof raw);
    slot->fingerprint = le64(raw[0]);
    slot->window = (int64_t)le64(raw[1]);
    slot->expires = (int64_t)le64(raw[2]);
    slot->count = (int64_t)le64(raw[3]);
}

static inline void write_slot(char *at, uint64_t fingerprint, int64_t window, int64_t expires,
                              int64_t count) {
    uint64_t raw[4] = {le64(fingerprint), le64((uint64_t)window), le64((uint64_t)expires),
                       le64((uint64_t)count)};
    memcpy(at, raw, sizeof raw);
}

static int Table_init(Table *self, PyObject *args, PyObject *kwds) {
    static char *names[] = {"mapped", "data_start", "stripes", "per_stripe", "mutexes", NULL};
    PyObject *mapped;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Onnnn", names, &mapped, &self->data_start,
                                     &self->stripes, &self->per_stripe, &self->mutexes))
        return -1;
    if (self->has_view) {
        PyBuffer_Release(&self->view);
        self->has_view = 0;
    }
    if (self->stripes <= 0 || self->per_stripe < PROBES || self->data_start < 0) {
        PyErr_SetString(PyExc_ValueError, "counter table: bad geometry");
        return -1;
    }
    if (PyObject_GetBuffer(mapped, &self->view, PyBUF_WRITABLE) < 0)
        return -1;
    self->has_view = 1;
    Py_ssize_t need = self->data_start + self->stripes * self->per_stripe * SLOT_SIZE;
    int mutexes_fit = self->mutexes < 0 ||
                      self->mutexes + self->stripes * MUTEX_SIZE <= self->data_start;
    if (self->view.len < need || !mutexes_fit) {
        PyBuffer_Release(&self->view);
        self->has_view = 0;
        PyErr_SetString(PyExc_ValueError, "counter table: the mapping is smaller than its geometry");
        return -1;
    }
    return 0;
}

static void Table_dealloc(Table *self) {
    if (self->has_view)
        PyBuffer_Release(&self->view);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Table_release(Table *self, PyObject *unused) {
    if (self->has_view) {
        PyBuffer_Release(&self->view);
        self->has_view = 0;
    }
    Py_RETURN_NONE;
}

/* The slot for `fingerprint` probing from `home` (see CounterStore._locate). */
static Py_ssize_t locate(Table *self, const char *mem, Py_ssize_t home, uint64_t fingerprint,
                         int64_t window, int64_t now, const Py_ssize_t *taken, int ntaken,
                         int64_t *count, int64_t *kept, int *evicted) {
    Py_ssize_t stripe_size = self->per_stripe * SLOT_SIZE;
    Py_ssize_t base = home - (home - self->data_start) % stripe_size;
    Py_ssize_t first = home - base;
    Py_ssize_t free_at = -1, victim = -1;
    int64_t victim_expires = 0;
    Slot slot;
    *count = 0;
    *kept = window;
    for (int probe = 0; probe < PROBES; probe++) {
        Py_ssize_t offset = base + (first + (Py_ssize_t)probe * SLOT_SIZE) % stripe_size;
        read_slot(mem + offset, &slot);
        if (slot.fingerprint == fingerprint) {
            if (slot.window >= window) {
                *count = slot.count;
                *kept = slot.window;
            }
            return offset;
        }
        int is_taken = 0;
        for (int t = 0; t < ntaken; t++)
            if (taken[t] == offset)
                is_taken = 1;
        if (is_taken)
            continue;
        if (slot.fingerprint == 0)
            return free_at >= 0 ? free_at : offset;
        if (free_at < 0) {
            if (slot.expires <= now)
                free_at = offset;
            else if (victim < 0 || slot.expires < victim_expires) {
                victim = offset;
                victim_expires = slot.expires;
            }
        }
    }
    if (free_at >= 0)
        return free_at;
    *evicted += 1;
    return victim;
}

static int read_ints(PyObject *seq, Py_ssize_t n, int64_t *out, const char *what) {
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "counter table: %s must be integers", what);
            return -1;
        }
        out[i] = (int64_t)v;
    }
    return 0;
}

/* hit(stripe, fingerprints, homes, windows, expires, limits, now) -> (usage, stop, evicted) */
static PyObject *Table_hit(Table *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "hit() takes 7 arguments");
        return NULL;
    }
    if (!self->has_view) {
        PyErr_SetString(PyExc_ValueError, "counter table: released");
        return NULL;
    }
    Py_ssize_t stripe = PyLong_AsSsize_t(args[0]);
    if (stripe == -1 && PyErr_Occurred())
        return NULL;
    int64_t now = (int64_t)PyLong_AsLongLong(args[6]);
    if (now == -1 && PyErr_Occurred())
        return NULL;
    if (stripe < 0 || stripe >= self->stripes) {
        PyErr_SetString(PyExc_IndexError, "counter table: no such stripe");
        return NULL;
    }
    PyObject *seqs[5] = {NULL, NULL, NULL, NULL, NULL};
    static const char *what[5] = {"fingerprints", "homes", "windows", "expires", "limits"};
    PyObject *result = NULL;
    Py_ssize_t n = 0;
    for (int k = 0; k < 5; k++) {
        seqs[k] = PySequence_Fast(args[1 + k], what[k]);
        if (seqs[k] == NULL)
            goto done;
        Py_ssize_t len = PySequence_Fast_GET_SIZE(seqs[k]);
        if (k == 0)
            n = len;
        if (len != n || n > MAX_PERIODS) {
            PyErr_SetString(PyExc_ValueError,
                            "counter table: period lists differ in length (or exceed 16)");
            goto done;
        }
    }
    uint64_t fingerprints[MAX_PERIODS];
    int64_t homes[MAX_PERIODS], windows[MAX_PERIODS], expires[MAX_PERIODS];
    double limits[MAX_PERIODS];
    for (Py_ssize_t i = 0; i < n; i++) {
        fingerprints[i] = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(seqs[0], i));
        if (fingerprints[i] == (uint64_t)-1 && PyErr_Occurred())
            goto done;
        limits[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seqs[4], i));
        if (limits[i] == -1.0 && PyErr_Occurred())
            goto done;
    }
    if (read_ints(seqs[1], n, homes, "homes") < 0 || read_ints(seqs[2], n, windows, "windows") < 0 ||
        read_ints(seqs[3], n, expires, "expires") < 0)
        goto done;
    Py_ssize_t lo = self->data_start + stripe * self->per_stripe * SLOT_SIZE;
    Py_ssize_t hi = lo + self->per_stripe * SLOT_SIZE;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (homes[i] < lo || homes[i] + SLOT_SIZE > hi || (homes[i] - lo) % SLOT_SIZE) {
            PyErr_SetString(PyExc_ValueError, "counter table: a home slot outside its stripe");
            goto done;
        }
    }

    char *mem = (char *)self->view.buf;
    pthread_mutex_t *mutex = NULL;
    if (self->mutexes >= 0) {
        mutex = (pthread_mutex_t *)(mem + self->mutexes + stripe * MUTEX_SIZE);
        int rc = pthread_mutex_lock(mutex);
        if (rc == EOWNERDEAD) {
            pthread_mutex_consistent(mutex); /* its holder died: the mutex is ours again */
        } else if (rc != 0) {
            errno = rc;
            PyErr_SetFromErrno(PyExc_OSError);
            goto done;
        }
    }
    Py_ssize_t offsets[MAX_PERIODS];
    int64_t kept[MAX_PERIODS], usage[MAX_PERIODS];
    int stop = -1, evicted = 0;
    Slot slot;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t offset = (Py_ssize_t)homes[i];
        read_slot(mem + offset, &slot);
        int64_t count, window;
        if (slot.fingerprint == fingerprints[i]) { /* the usual case: found at home */
            count = slot.count;
            window = slot.window;
            if (window < windows[i]) {
                count = 0;
                window = windows[i];
            }
        } else {
            offset = locate(self, mem, offset, fingerprints[i], windows[i], now, offsets, (int)i,
                            &count, &window, &evicted);
        }
        offsets[i] = offset;
        kept[i] = window;
        usage[i] = count;
        if (stop < 0 && limits[i] - (double)count <= 0)
            stop = (int)i;
    }
    if (stop < 0)
        for (Py_ssize_t i = 0; i < n; i++)
            write_slot(mem + offsets[i], fingerprints[i], kept[i], expires[i], usage[i] + 1);
    if (mutex != NULL)
        pthread_mutex_unlock(mutex);

    PyObject *counts = PyList_New(n);
    if (counts == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLongLong(usage[i]);
        if (v == NULL) {
            Py_DECREF(counts);
            goto done;
        }
        PyList_SET_ITEM(counts, i, v);
    }
    result = Py_BuildValue("(Nii)", counts, stop, evicted);
done:
    for (int k = 0; k < 5; k++)
        Py_XDECREF(seqs[k]);
    return result;
}

static PyMethodDef Table_methods[] = {
    {"hit", (PyCFunction)(void (*)(void))Table_hit, METH_FASTCALL,
     "hit(stripe, fingerprints, homes, windows, expires, limits, now) -> (usage, stop, evicted)"},
    {"release", (PyCFunction)Table_release, METH_NOARGS, "Unpin the mapping (before closing it)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "meshgate.plugins.rate_limiting.counter_kernel.Table",
    .tp_doc = "Table(mapped, data_start, stripes, per_stripe, mutexes): a counter table's hit.",
    .tp_basicsize = sizeof(Table),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Table_init,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_methods = Table_methods,
};

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT, "counter_kernel",
    "The node counter store's check-and-count in C (see shared_counters.py).", -1, NULL,
};

PyMODINIT_FUNC PyInit_counter_kernel(void) {
    if (PyType_Ready(&TableType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&kernel_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&TableType);
    if (PyModule_AddObject(module, "Table", (PyObject *)&TableType) < 0) {
        Py_DECREF(&TableType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "SLOT_SIZE", SLOT_SIZE) < 0 ||
        PyModule_AddIntConstant(module, "PROBES", PROBES) < 0 ||
        PyModule_AddIntConstant(module, "MUTEX_SIZE", MUTEX_SIZE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
