//! NumPy `.npy` files (format 1.0–3.0), for `flexc exec` inputs and outputs.
//!
//! Supported dtypes: `<f4`, `<f2`, `<f8` (read as f32), `<i8`, `<i4`, `<i2`,
//! `|i1`, `|u1`; C order only. Untrusted input: the header is bounded and
//! every size is checked before allocation.

use flexc_backends::reference::{Data, Tensor};
use flexc_ir::ElemType;

/// Parses `.npy` bytes into a tensor.
pub fn read(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    if hlen > 1 << 20 || start + hlen > bytes.len() {
        return Err("truncated .npy header".into());
    }
    let header = std::str::from_utf8(&bytes[start..start + hlen]).map_err(|_| "the .npy header is not text")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header.find(&format!("'{key}'")).ok_or(format!("the .npy header has no '{key}'"))?;
        Ok(header[at + key.len() + 2..].trim_start().trim_start_matches(':').trim_start())
    };
    let descr = field("descr")?;
    let descr = descr.get(1..).and_then(|d| d.split('\'').next()).ok_or("bad descr")?;
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-order .npy files are not supported".into());
    }
    let shape_txt = field("shape")?;
    let close = shape_txt.find(')').ok_or("bad shape")?;
    let shape: Vec<usize> = shape_txt[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad dimension '{s}'")))
        .collect::<Result<_, _>>()?;
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("shape overflows")?;
    let data = &bytes[start + hlen..];
    let (elem, width) = match descr {
        "<f4" => (ElemType::F32, 4),
        "<f2" => (ElemType::F16, 2),
        "<f8" => (ElemType::F32, 8),
        "<i8" => (ElemType::I64, 8),
        "<i4" => (ElemType::I32, 4),
        "<i2" => (ElemType::I16, 2),
        "|i1" => (ElemType::I8, 1),
        "|u1" => (ElemType::U8, 1),
        d => return Err(format!("unsupported dtype '{d}'")),
    };
    if n.checked_mul(width).is_none_or(|b| data.len() < b) {
        return Err(format!("truncated data: {n} elements of {width} bytes need {} bytes, the file has {}", n.saturating_mul(width), data.len()));
    }
    let word = |i: usize| &data[i * width..(i + 1) * width];
    Ok(match descr {
        "<f4" => Tensor::f32(&shape, (0..n).map(|i| f32::from_le_bytes(word(i).try_into().unwrap_or_default())).collect()),
        "<f8" => Tensor::f32(&shape, (0..n).map(|i| f64::from_le_bytes(word(i).try_into().unwrap_or_default()) as f32).collect()),
        "<f2" => Tensor::float(elem, &shape, (0..n).map(|i| half::f16::from_le_bytes([word(i)[0], word(i)[1]]).to_f32()).collect()),
        _ => {
            let v = (0..n)
                .map(|i| {
                    let w = word(i);
                    match width {
                        8 => i64::from_le_bytes(w.try_into().unwrap_or_default()),
                        4 => i32::from_le_bytes(w.try_into().unwrap_or_default()) as i64,
                        2 => i16::from_le_bytes([w[0], w[1]]) as i64,
                        _ if elem == ElemType::U8 => w[0] as i64,
                        _ => w[0] as i8 as i64,
                    }
                })
                .collect();
            Tensor::int(elem, &shape, v)?
        }
    })
}

/// Serialises a plain tensor as `.npy` (f16/bf16 are written as f32, sub-byte integers as i8).
pub fn write(t: &Tensor) -> Result<Vec<u8>, String> {
    let (descr, body): (&str, Vec<u8>) = match &t.data {
        Data::F32(v) => ("<f4", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Data::Int(v) => match t.elem {
            ElemType::I64 => ("<i8", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            ElemType::I32 => ("<i4", v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect()),
            ElemType::I16 => ("<i2", v.iter().flat_map(|&x| (x as i16).to_le_bytes()).collect()),
            ElemType::U8 => ("|u1", v.iter().map(|&x| x as u8).collect()),
            _ => ("|i1", v.iter().map(|&x| x as i8 as u8).collect()),
        },
        Data::Encoded(e, _) => return Err(format!("cannot write an encoded ({e}) tensor as .npy; dequantize it first")),
    };
    let dims: Vec<String> = t.shape.iter().map(ToString::to_string).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = Tensor::f32(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        let back = read(&write(&t).unwrap()).unwrap();
        assert_eq!(back.shape, vec![2, 3]);
        assert_eq!(back.as_f32().unwrap(), t.as_f32().unwrap());
        let i = Tensor::int(ElemType::I32, &[3], vec![-1, 0, 7]).unwrap();
        assert_eq!(read(&write(&i).unwrap()).unwrap().as_int().unwrap(), &[-1, 0, 7]);
        assert!(read(b"\x93NUMPY\x01\x00\x50\x00{").is_err());
    }
}
