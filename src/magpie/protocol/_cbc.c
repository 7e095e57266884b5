/* AES-128-CBC of one WuKongIM session through OpenSSL's libcrypto (spec §2.2, §2.3).
 *
 * The native twin of magpie.protocol.crypto._CbcChain: the same methods, returning the same
 * bytes. The Python class is the reference (the tests compare both byte for byte) and the
 * fallback wherever this module was not built. What it saves is Python overhead, not AES
 * time: sealing a RECV for one connection takes two encryptions, two base64 encodings, an
 * MD5 and the frame's assembly, a dozen interpreter-level calls that cost more than the
 * cryptography itself; here it is one call.
 *
 * Each object owns an encryption and a decryption context, keyed once; every call first
 * rewinds the context to the session's fixed IV (re-initialising with the IV alone keeps
 * the key schedule), and feeds whole blocks only (padding is PKCS#7, done here), so the
 * contexts never hold bytes between calls. The GIL is held throughout: a call is atomic for
 * the threads that may share a cipher.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <string.h>
#include <openssl/evp.h>

#define BLOCK 16
#define KEY_SIZE 16
#define DIGEST_SIZE 16
#define MSG_KEY_SIZE (2 * DIGEST_SIZE)

typedef struct {
    PyObject_HEAD
    EVP_CIPHER_CTX *enc;
    EVP_CIPHER_CTX *dec;
    EVP_MD_CTX *md;
    unsigned char iv[BLOCK];
} CbcObject;

static const char HEX[] = "0123456789abcdef";

/* Size of base64 text (with padding) of n bytes. */
static Py_ssize_t
b64_size(Py_ssize_t n)
{
    return (n + 2) / 3 * 4;
}

static PyObject *
openssl_error(const char *what)
{
    PyErr_Format(PyExc_RuntimeError, "OpenSSL failed to %s", what);
    return NULL;
}

/* AES-CBC of `n` bytes (a multiple of BLOCK) from the session IV into `out`. */
static int
encrypt_blocks(CbcObject *self, const unsigned char *in, Py_ssize_t n, unsigned char *out)
{
    int done = 0;
    if (n > INT_MAX || !EVP_EncryptInit_ex(self->enc, NULL, NULL, NULL, self->iv))
        return 0;
    return n == 0 || (EVP_EncryptUpdate(self->enc, out, &done, in, (int)n) && done == n);
}

/* Lowercase hex MD5 of base64(`data`), into `out` (MSG_KEY_SIZE bytes): the msgKey tail of
 * §2.3. `scratch` holds at least b64_size(n) + 1 bytes. */
static int
msg_key_of(CbcObject *self, const unsigned char *data, Py_ssize_t n, unsigned char *scratch,
           unsigned char *out)
{
    unsigned char digest[DIGEST_SIZE];
    unsigned int size = 0;
    int text = 0;
    if (n > INT_MAX / 2)
        return 0;
    text = EVP_EncodeBlock(scratch, data, (int)n);
    if (!EVP_DigestInit_ex2(self->md, NULL, NULL) ||
        !EVP_DigestUpdate(self->md, scratch, (size_t)text) ||
        !EVP_DigestFinal_ex(self->md, digest, &size) || size != DIGEST_SIZE)
        return 0;
    for (int i = 0; i < DIGEST_SIZE; i++) {
        out[2 * i] = (unsigned char)HEX[digest[i] >> 4];
        out[2 * i + 1] = (unsigned char)HEX[digest[i] & 0x0F];
    }
    return 1;
}

/* PKCS#7 padding of a message of `n` bytes (§2.2): 1..16 bytes, each the pad's length. */
static int
pad_size(Py_ssize_t n)
{
    return BLOCK - (int)(n % BLOCK);
}

static int
Cbc_init(CbcObject *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"key", "iv", NULL};
    Py_buffer key, iv;
    int ok = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*:Cbc", names, &key, &iv))
        return -1;
    if (key.len != KEY_SIZE || iv.len != BLOCK) {
        PyErr_SetString(PyExc_ValueError, "the AES key and IV are 16 bytes each");
        goto done;
    }
    memcpy(self->iv, iv.buf, BLOCK);
    if (self->enc == NULL)
        self->enc = EVP_CIPHER_CTX_new();
    if (self->dec == NULL)
        self->dec = EVP_CIPHER_CTX_new();
    if (self->md == NULL)
        self->md = EVP_MD_CTX_new();
    if (self->enc == NULL || self->dec == NULL || self->md == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (!EVP_EncryptInit_ex(self->enc, EVP_aes_128_cbc(), NULL, key.buf, self->iv) ||
        !EVP_DecryptInit_ex(self->dec, EVP_aes_128_cbc(), NULL, key.buf, self->iv) ||
        !EVP_CIPHER_CTX_set_padding(self->enc, 0) ||
        !EVP_CIPHER_CTX_set_padding(self->dec, 0) ||
        !EVP_DigestInit_ex(self->md, EVP_md5(), NULL)) {
        openssl_error("set up AES-128-CBC and MD5");
        goto done;
    }
    ok = 1;
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&iv);
    return ok ? 0 : -1;
}

static void
Cbc_dealloc(CbcObject *self)
{
    EVP_CIPHER_CTX_free(self->enc);
    EVP_CIPHER_CTX_free(self->dec);
    EVP_MD_CTX_free(self->md);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
buffer_arg(PyObject *arg, Py_buffer *view)
{
    return PyObject_GetBuffer(arg, view, PyBUF_SIMPLE);
}

PyDoc_STRVAR(encrypt_doc,
"encrypt(plain, /)\n--\n\n"
"AES-CBC ciphertext of plain with PKCS#7 padding (§2.2), from the session IV.");

static PyObject *
Cbc_encrypt(CbcObject *self, PyObject *arg)
{
    Py_buffer plain;
    PyObject *out = NULL;
    Py_ssize_t size;
    unsigned char *padded;
    int pad;
    if (buffer_arg(arg, &plain) < 0)
        return NULL;
    pad = pad_size(plain.len);
    size = plain.len + pad;
    padded = PyMem_Malloc((size_t)size);
    if (padded == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(padded, plain.buf, (size_t)plain.len);
    memset(padded + plain.len, pad, (size_t)pad);
    out = PyBytes_FromStringAndSize(NULL, size);
    if (out != NULL && !encrypt_blocks(self, padded, size, (unsigned char *)PyBytes_AS_STRING(out))) {
        Py_CLEAR(out);
        openssl_error("encrypt");
    }
    PyMem_Free(padded);
done:
    PyBuffer_Release(&plain);
    return out;
}

PyDoc_STRVAR(decrypt_doc,
"decrypt(raw, /)\n--\n\n"
"AES-CBC decryption of whole blocks raw from the session IV (padding left on).");

static PyObject *
Cbc_decrypt(CbcObject *self, PyObject *arg)
{
    Py_buffer raw;
    PyObject *out = NULL;
    int done = 0;
    if (buffer_arg(arg, &raw) < 0)
        return NULL;
    if (raw.len % BLOCK || raw.len > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "the ciphertext is not whole AES blocks");
        goto end;
    }
    out = PyBytes_FromStringAndSize(NULL, raw.len);
    if (out == NULL)
        goto end;
    if (raw.len && (!EVP_DecryptInit_ex(self->dec, NULL, NULL, NULL, self->iv) ||
                    !EVP_DecryptUpdate(self->dec, (unsigned char *)PyBytes_AS_STRING(out),
                                       &done, raw.buf, (int)raw.len) ||
                    done != raw.len)) {
        Py_CLEAR(out);
        openssl_error("decrypt");
    }
end:
    PyBuffer_Release(&raw);
    return out;
}

PyDoc_STRVAR(msg_key_doc,
"msg_key(verify, /)\n--\n\n"
"The msgKey of a verify string's UTF-8 bytes (§2.3): md5_hex(base64(AES(verify))), as str.");

static PyObject *
Cbc_msg_key(CbcObject *self, PyObject *arg)
{
    Py_buffer verify;
    PyObject *out = NULL;
    unsigned char *work = NULL;
    unsigned char key[MSG_KEY_SIZE];
    Py_ssize_t size;
    int pad;
    if (buffer_arg(arg, &verify) < 0)
        return NULL;
    pad = pad_size(verify.len);
    size = verify.len + pad;
    /* padded plaintext, its ciphertext, the base64 text of that (+ NUL) */
    work = PyMem_Malloc((size_t)(2 * size + b64_size(size) + 1));
    if (work == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(work, verify.buf, (size_t)verify.len);
    memset(work + verify.len, pad, (size_t)pad);
    if (!encrypt_blocks(self, work, size, work + size) ||
        !msg_key_of(self, work + size, size, work + 2 * size, key)) {
        openssl_error("compute a msgKey");
        goto done;
    }
    out = PyUnicode_DecodeASCII((const char *)key, MSG_KEY_SIZE, NULL);
done:
    PyMem_Free(work);
    PyBuffer_Release(&verify);
    return out;
}

PyDoc_STRVAR(seal_frame_doc,
"seal_frame(before_key, before_payload, padded, verify_head, verify_pad, /)\n--\n\n"
"A RECV frame sealed for this session (§2.2, §2.3): before_key + msgKey + before_payload +\n"
"base64(AES(padded)), where the msgKey is that of verify_head + the base64 text +\n"
"verify_pad (already a whole number of blocks). See magpie.protocol.crypto.RecvSealer.");

static PyObject *
Cbc_seal_frame(CbcObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer part[5];
    int got = 0;
    PyObject *out = NULL;
    unsigned char *work = NULL;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "seal_frame takes 5 arguments");
        return NULL;
    }
    for (; got < 5; got++)
        if (buffer_arg(args[got], &part[got]) < 0)
            goto done;
    {
        Py_buffer *pre = &part[0], *mid = &part[1], *padded = &part[2];
        Py_buffer *head = &part[3], *pad = &part[4];
        Py_ssize_t wire = b64_size(padded->len);
        Py_ssize_t verify = head->len + wire + pad->len;
        Py_ssize_t key_at = pre->len, mid_at = key_at + MSG_KEY_SIZE;
        Py_ssize_t wire_at = mid_at + mid->len;
        unsigned char *frame, *cipher, *tag;
        if (padded->len % BLOCK || verify % BLOCK) {
            PyErr_SetString(PyExc_ValueError, "the plaintexts are not whole AES blocks");
            goto done;
        }
        /* the payload's ciphertext, the verify string, its ciphertext, base64 of that + NUL */
        work = PyMem_Malloc((size_t)(padded->len + 2 * verify + b64_size(verify) + 1));
        out = PyBytes_FromStringAndSize(NULL, wire_at + wire);
        if (work == NULL || out == NULL) {
            if (work == NULL)
                PyErr_NoMemory();
            Py_CLEAR(out);
            goto done;
        }
        frame = (unsigned char *)PyBytes_AS_STRING(out);
        cipher = work;
        tag = work + padded->len;
        memcpy(frame, pre->buf, (size_t)pre->len);
        memcpy(frame + mid_at, mid->buf, (size_t)mid->len);
        if (!encrypt_blocks(self, padded->buf, padded->len, cipher))
            goto failed;
        /* The base64 text goes straight to the frame's end; its NUL lands on the byte every
           bytes object keeps after its last. */
        EVP_EncodeBlock(frame + wire_at, cipher, (int)padded->len);
        memcpy(tag, head->buf, (size_t)head->len);
        memcpy(tag + head->len, frame + wire_at, (size_t)wire);
        memcpy(tag + head->len + wire, pad->buf, (size_t)pad->len);
        if (!encrypt_blocks(self, tag, verify, tag + verify) ||
            !msg_key_of(self, tag + verify, verify, tag + 2 * verify, frame + key_at))
            goto failed;
        goto done;
    failed:
        Py_CLEAR(out);
        openssl_error("seal a RECV");
    }
done:
    while (got-- > 0)
        PyBuffer_Release(&part[got]);
    PyMem_Free(work);
    return out;
}

static PyMethodDef Cbc_methods[] = {
    {"encrypt", (PyCFunction)Cbc_encrypt, METH_O, encrypt_doc},
    {"decrypt", (PyCFunction)Cbc_decrypt, METH_O, decrypt_doc},
    {"msg_key", (PyCFunction)Cbc_msg_key, METH_O, msg_key_doc},
    {"seal_frame", (PyCFunction)(void (*)(void))Cbc_seal_frame, METH_FASTCALL, seal_frame_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Cbc_doc,
"Cbc(key, iv)\n--\n\n"
"AES-128-CBC contexts of one session, keyed once, rewound to iv before every message.");

static PyTypeObject CbcType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "magpie.protocol._cbc.Cbc",
    .tp_basicsize = sizeof(CbcObject),
    .tp_dealloc = (destructor)Cbc_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Cbc_doc,
    .tp_methods = Cbc_methods,
    .tp_init = (initproc)Cbc_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef cbc_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "magpie.protocol._cbc",
    .m_doc = "Native AES-128-CBC sessions for magpie.protocol.crypto (optional).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__cbc(void)
{
    PyObject *module;
    if (PyType_Ready(&CbcType) < 0)
        return NULL;
    module = PyModule_Create(&cbc_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&CbcType);
    if (PyModule_AddObject(module, "Cbc", (PyObject *)&CbcType) < 0) {
        Py_DECREF(&CbcType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
