// counting_vfs: a SQLite VFS that forwards to the default one and counts xSync calls, to see how
// many commits (and fsyncs) a run store really makes, and fails writes to the write-ahead log on
// request (a full disk). Used by the run store tests and benchmark.
#pragma once

#include <atomic>
#include <cstring>
#include <sqlite3.h>
#include <stdexcept>

namespace wafer::testing {

class counting_vfs {
public:
    static constexpr const char* name = "wafer_counting";

    /// The VFS, registered (not as the default) on first use.
    static counting_vfs& instance() {
        static counting_vfs v;
        return v;
    }

    /// xSync calls on write-ahead logs and on database files since the start.
    std::atomic<long> wal_syncs{0};
    std::atomic<long> db_syncs{0};

    long syncs() const noexcept { return wal_syncs.load() + db_syncs.load(); }

    /// While set, writes to write-ahead logs fail with SQLITE_FULL.
    std::atomic<bool> fail_wal_writes{false};

private:
    struct file {
        sqlite3_file base;
        sqlite3_file* real;
        bool wal;
    };

    counting_vfs() {
        real_ = sqlite3_vfs_find(nullptr);
        if (!real_) {
            throw std::runtime_error("counting_vfs: no default sqlite3_vfs");
        }
        vfs_ = *real_;
        vfs_.szOsFile = static_cast<int>(sizeof(file)) + real_->szOsFile;
        vfs_.zName = name;
        vfs_.pAppData = this;
        vfs_.pNext = nullptr;
        vfs_.xOpen = &open;
        methods_ = sqlite3_io_methods{};
        methods_.iVersion = 3;
        methods_.xClose = [](sqlite3_file* f) {
            return real(f)->pMethods->xClose(real(f));
        };
        methods_.xRead = [](sqlite3_file* f, void* b, int n, sqlite3_int64 o) {
            return real(f)->pMethods->xRead(real(f), b, n, o);
        };
        methods_.xWrite = [](sqlite3_file* f, const void* b, int n, sqlite3_int64 o) {
            if (reinterpret_cast<file*>(f)->wal && instance().fail_wal_writes.load()) {
                return SQLITE_FULL;
            }
            return real(f)->pMethods->xWrite(real(f), b, n, o);
        };
        methods_.xTruncate = [](sqlite3_file* f, sqlite3_int64 n) {
            return real(f)->pMethods->xTruncate(real(f), n);
        };
        methods_.xSync = [](sqlite3_file* f, int flags) {
            auto& self = instance();
            (reinterpret_cast<file*>(f)->wal ? self.wal_syncs : self.db_syncs)++;
            return real(f)->pMethods->xSync(real(f), flags);
        };
        methods_.xFileSize = [](sqlite3_file* f, sqlite3_int64* n) {
            return real(f)->pMethods->xFileSize(real(f), n);
        };
        methods_.xLock = [](sqlite3_file* f, int l) {
            return real(f)->pMethods->xLock(real(f), l);
        };
        methods_.xUnlock = [](sqlite3_file* f, int l) {
            return real(f)->pMethods->xUnlock(real(f), l);
        };
        methods_.xCheckReservedLock = [](sqlite3_file* f, int* out) {
            return real(f)->pMethods->xCheckReservedLock(real(f), out);
        };
        methods_.xFileControl = [](sqlite3_file* f, int op, void* arg) {
            return real(f)->pMethods->xFileControl(real(f), op, arg);
        };
        methods_.xSectorSize = [](sqlite3_file* f) {
            return real(f)->pMethods->xSectorSize(real(f));
        };
        methods_.xDeviceCharacteristics = [](sqlite3_file* f) {
            return real(f)->pMethods->xDeviceCharacteristics(real(f));
        };
        methods_.xShmMap = [](sqlite3_file* f, int pg, int sz, int extend, void volatile** p) {
            return real(f)->pMethods->xShmMap(real(f), pg, sz, extend, p);
        };
        methods_.xShmLock = [](sqlite3_file* f, int offset, int n, int flags) {
            return real(f)->pMethods->xShmLock(real(f), offset, n, flags);
        };
        methods_.xShmBarrier = [](sqlite3_file* f) {
            real(f)->pMethods->xShmBarrier(real(f));
        };
        methods_.xShmUnmap = [](sqlite3_file* f, int del) {
            return real(f)->pMethods->xShmUnmap(real(f), del);
        };
        methods_.xFetch = [](sqlite3_file* f, sqlite3_int64 o, int n, void** p) {
            return real(f)->pMethods->xFetch(real(f), o, n, p);
        };
        methods_.xUnfetch = [](sqlite3_file* f, sqlite3_int64 o, void* p) {
            return real(f)->pMethods->xUnfetch(real(f), o, p);
        };
        if (sqlite3_vfs_register(&vfs_, 0) != SQLITE_OK) {
            throw std::runtime_error("counting_vfs: sqlite3_vfs_register failed");
        }
    }

    static sqlite3_file* real(sqlite3_file* f) { return reinterpret_cast<file*>(f)->real; }

    static int open(sqlite3_vfs* vfs, const char* path, sqlite3_file* f, int flags, int* out) {
        auto* self = static_cast<counting_vfs*>(vfs->pAppData);
        auto* p = reinterpret_cast<file*>(f);
        p->real = reinterpret_cast<sqlite3_file*>(p + 1);
        p->wal = (flags & SQLITE_OPEN_WAL) != 0;
        std::memset(p->real, 0, static_cast<std::size_t>(self->real_->szOsFile));
        const int rc = self->real_->xOpen(self->real_, path, p->real, flags, out);
        // The real file's methods decide whether xClose will be called; mirror them.
        p->base.pMethods = p->real->pMethods ? &self->methods_ : nullptr;
        return rc;
    }

    sqlite3_vfs* real_ = nullptr;
    sqlite3_vfs vfs_{};
    sqlite3_io_methods methods_{};
};

} // namespace wafer::testing
