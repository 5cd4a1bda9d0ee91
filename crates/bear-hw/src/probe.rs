//! Hardware detection behind the [`Probe`] trait; [`SysProbe`] reads the real machine.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything BEAR knows about the machine. Serialised as the stable `bear hw --json` schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// The processor.
    pub cpu: CpuInfo,
    /// Main memory.
    pub memory: MemoryInfo,
    /// Visible GPUs; empty is a valid answer.
    pub gpus: Vec<GpuInfo>,
    /// Free space where BEAR keeps its data, if it could be found.
    pub disk: Option<DiskInfo>,
}

/// The processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// Brand string, such as `AMD EPYC 7B13`.
    pub model: String,
    /// `x86_64`, `aarch64`, ...
    pub arch: String,
    /// Physical cores.
    pub physical_cores: usize,
    /// Logical CPUs (hardware threads) available to this process.
    pub logical_cores: usize,
    /// SIMD extensions that inference kernels use.
    pub simd: SimdFeatures,
}

/// SIMD extensions detected at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SimdFeatures {
    /// x86 AVX2 (with FMA).
    pub avx2: bool,
    /// x86 AVX-512 Foundation.
    pub avx512: bool,
    /// Arm NEON (Advanced SIMD).
    pub neon: bool,
}

/// Main memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryInfo {
    /// Total usable by this process: the smaller of physical RAM and a cgroup limit.
    pub total_bytes: u64,
    /// Available now without swapping.
    pub available_bytes: u64,
    /// The `RLIMIT_MEMLOCK` soft limit; `None` means unlimited.
    pub mlock_limit_bytes: Option<u64>,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// Vendor: `nvidia`, `amd`, `intel` or a PCI vendor id.
    pub vendor: String,
    /// Name or PCI device id.
    pub name: String,
    /// Dedicated memory, when the driver reports it.
    pub memory_bytes: Option<u64>,
}

/// Disk space at a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskInfo {
    /// The directory asked about.
    pub path: PathBuf,
    /// The mount point holding it.
    pub mount_point: PathBuf,
    /// Free bytes for an unprivileged user.
    pub available_bytes: u64,
    /// Size of the filesystem.
    pub total_bytes: u64,
}

/// Detects the machine. [`SysProbe`] is the real one; tests build [`Machine`] values directly.
pub trait Probe {
    /// Detects everything; `data_dir` is where free disk space is measured.
    fn probe(&self, data_dir: &Path) -> Machine;
}

/// The real probe: sysinfo for CPU, memory and disks; std's feature detection for SIMD;
/// `/sys/class/drm` for GPUs.
#[derive(Debug, Default, Clone, Copy)]
pub struct SysProbe;

impl Probe for SysProbe {
    fn probe(&self, data_dir: &Path) -> Machine {
        use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

        // Detection never fails as a whole: a part sysinfo cannot read is reported as unknown.
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_memory(MemoryRefreshKind::nothing().with_ram())
                .with_cpu(CpuRefreshKind::nothing()),
        )
        .ok();
        let logical = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or_else(|_| sys.as_ref().map_or(1, |s| s.cpus().len().max(1)));
        let physical = System::physical_core_count()
            .unwrap_or(logical)
            .clamp(1, logical);
        let model = sys
            .as_ref()
            .and_then(|s| s.cpus().first().map(|c| c.brand().trim().to_string()))
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "unknown".into());

        let (mut total, mut available) = sys
            .as_ref()
            .map_or((0, 0), |s| (s.total_memory(), s.available_memory()));
        if let Some(limits) = sys.as_ref().and_then(|s| s.cgroup_limits()) {
            total = total.min(limits.total_memory);
            available = available.min(limits.free_memory);
        }

        Machine {
            cpu: CpuInfo {
                model,
                arch: std::env::consts::ARCH.to_string(),
                physical_cores: physical,
                logical_cores: logical,
                simd: detect_simd(),
            },
            memory: MemoryInfo {
                total_bytes: total,
                available_bytes: available,
                mlock_limit_bytes: read_mlock_limit(),
            },
            gpus: detect_gpus(Path::new("/sys/class/drm")),
            disk: disk_at(data_dir),
        }
    }
}

fn detect_simd() -> SimdFeatures {
    #[cfg(target_arch = "x86_64")]
    {
        SimdFeatures {
            avx2: std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"),
            avx512: std::arch::is_x86_feature_detected!("avx512f"),
            neon: false,
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        SimdFeatures {
            avx2: false,
            avx512: false,
            neon: std::arch::is_aarch64_feature_detected!("neon"),
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        SimdFeatures::default()
    }
}

/// Reads the soft `RLIMIT_MEMLOCK` from `/proc/self/limits` (Linux); `None` is unlimited or
/// unknown.
fn read_mlock_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_mlock_limit(&text)
}

fn parse_mlock_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    let soft = line["Max locked memory".len()..]
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

/// Lists GPUs from the DRM class directory: one `cardN` per device, with PCI vendor ids.
fn detect_gpus(drm: &Path) -> Vec<GpuInfo> {
    let Ok(entries) = std::fs::read_dir(drm) else {
        return Vec::new();
    };
    let mut cards: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("card") && !n.contains('-'))
        })
        .collect();
    cards.sort();
    cards
        .iter()
        .filter_map(|card| {
            let dev = card.join("device");
            let read = |f: &str| {
                std::fs::read_to_string(dev.join(f))
                    .ok()
                    .map(|s| s.trim().to_string())
            };
            let vendor_id = read("vendor")?;
            let vendor = match vendor_id.as_str() {
                "0x10de" => "nvidia".to_string(),
                "0x1002" => "amd".to_string(),
                "0x8086" => "intel".to_string(),
                other => other.to_string(),
            };
            let memory_bytes = read("mem_info_vram_total").and_then(|v| v.parse().ok());
            Some(GpuInfo {
                vendor,
                name: read("device").unwrap_or_else(|| "unknown".into()),
                memory_bytes,
            })
        })
        .collect()
}

/// Free space on the filesystem holding `path` (or its nearest existing ancestor).
fn disk_at(path: &Path) -> Option<DiskInfo> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let real = existing.canonicalize().ok()?;
    let disks = sysinfo::Disks::new_with_refreshed_list().ok()?;
    let disk = disks
        .iter()
        .filter(|d| real.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())?;
    Some(DiskInfo {
        path: path.to_path_buf(),
        mount_point: disk.mount_point().to_path_buf(),
        available_bytes: disk.available_space(),
        total_bytes: disk.total_space(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlock_limit_parsing() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max locked memory         8388608              8388608              bytes     \n";
        assert_eq!(parse_mlock_limit(limits), Some(8_388_608));
        let unlimited =
            "Max locked memory         unlimited            unlimited            bytes\n";
        assert_eq!(parse_mlock_limit(unlimited), None);
    }

    #[test]
    fn gpus_from_a_synthetic_drm_tree() {
        let dir = tempfile::tempdir().unwrap();
        for (card, vendor, vram) in [
            ("card0", "0x1002", Some("17163091968")),
            ("card1", "0x10de", None),
        ] {
            let dev = dir.path().join(card).join("device");
            std::fs::create_dir_all(&dev).unwrap();
            std::fs::write(dev.join("vendor"), format!("{vendor}\n")).unwrap();
            std::fs::write(dev.join("device"), "0x73bf\n").unwrap();
            if let Some(v) = vram {
                std::fs::write(dev.join("mem_info_vram_total"), v).unwrap();
            }
        }
        // Connector entries such as card0-HDMI-A-1 are not GPUs.
        std::fs::create_dir_all(dir.path().join("card0-HDMI-A-1")).unwrap();
        let gpus = detect_gpus(dir.path());
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].vendor, "amd");
        assert_eq!(gpus[0].memory_bytes, Some(17_163_091_968));
        assert_eq!(gpus[1].vendor, "nvidia");
        assert!(detect_gpus(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn real_probe_reports_a_plausible_machine() {
        let dir = tempfile::tempdir().unwrap();
        let m = SysProbe.probe(&dir.path().join("not/yet/created"));
        assert!(m.cpu.logical_cores >= 1);
        assert!(m.cpu.physical_cores >= 1 && m.cpu.physical_cores <= m.cpu.logical_cores);
        assert!(m.memory.total_bytes > 0);
        assert!(m.memory.available_bytes <= m.memory.total_bytes);
        let disk = m.disk.expect("a temp dir lives on some filesystem");
        assert!(disk.total_bytes >= disk.available_bytes);
    }
}
