//! A tiny ONNX model built with the frontend's own prost types, and its
//! malformed variants for the malformed corpus: `y = relu(x · W + b)` with
//! `x: f32[n, 4]` (a symbolic dimension), `W: f32[4, 3]` as raw bytes and
//! `b: f32[3]` in typed fields, opset 17.

use flexc::frontend::onnx::proto::{
    self, tensor_proto::DataType, tensor_shape_proto::dimension::Value as DimV, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;

fn value(name: &str, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| proto::tensor_shape_proto::Dimension { value: Some(match d { Ok(v) => DimV::DimValue(*v), Err(s) => DimV::DimParam((*s).into()) }), denotation: None })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: Some(DataType::Float as i32), shape: Some(TensorShapeProto { dim }) })),
            denotation: None,
        }),
        ..Default::default()
    }
}

fn node(op: &str, ins: &[&str], out: &str) -> NodeProto {
    NodeProto { op_type: Some(op.into()), input: ins.iter().map(|s| s.to_string()).collect(), output: vec![out.into()], name: Some(format!("{op}_{out}")), ..Default::default() }
}

/// The valid model.
pub fn model() -> ModelProto {
    let w: Vec<u8> = (0..12).flat_map(|i| (i as f32 * 0.25 - 1.0).to_le_bytes()).collect();
    let graph = GraphProto {
        name: Some("tiny".into()),
        node: vec![node("MatMul", &["x", "W"], "xw"), node("Add", &["xw", "b"], "z"), node("Relu", &["z"], "y")],
        initializer: vec![
            TensorProto { name: Some("W".into()), dims: vec![4, 3], data_type: Some(DataType::Float as i32), raw_data: Some(w.into()), ..Default::default() },
            TensorProto { name: Some("b".into()), dims: vec![3], data_type: Some(DataType::Float as i32), float_data: vec![0.5, -0.5, 0.0], ..Default::default() },
        ],
        input: vec![value("x", &[Err("n"), Ok(4)])],
        output: vec![value("y", &[Err("n"), Ok(3)])],
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        producer_name: Some("flexc-testsuite".into()),
        graph: Some(graph),
        ..Default::default()
    }
}

/// The valid model's bytes.
pub fn bytes() -> Vec<u8> {
    model().encode_to_vec()
}

fn edit(f: impl FnOnce(&mut ModelProto)) -> Vec<u8> {
    let mut m = model();
    f(&mut m);
    m.encode_to_vec()
}

fn g(m: &mut ModelProto) -> &mut GraphProto {
    m.graph.as_mut().expect("the synthetic model has a graph")
}

fn external(location: &str, offset: &str, length: &str) -> Vec<StringStringEntryProto> {
    [("location", location), ("offset", offset), ("length", length)]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| StringStringEntryProto { key: Some((*k).into()), value: Some((*v).into()) })
        .collect()
}

fn ext_w(m: &mut ModelProto, location: &str, offset: &str, length: &str) {
    let w = &mut g(m).initializer[0];
    w.raw_data = None;
    w.data_location = Some(proto::tensor_proto::DataLocation::External as i32);
    w.external_data = external(location, offset, length);
}

/// Graph-level malformed variants: `(name, bytes)`. Every one decodes as
/// protobuf; importing must fail with a one-line error.
pub fn semantic_cases() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("no-graph", edit(|m| m.graph = None)),
        ("no-opset", edit(|m| m.opset_import.clear())),
        ("opset-5", edit(|m| m.opset_import[0].version = Some(5))),
        ("opset-huge", edit(|m| m.opset_import[0].version = Some(i64::MAX))),
        ("unknown-domain", edit(|m| g(m).node[2].domain = Some("org.example".into()))),
        ("unknown-op", edit(|m| g(m).node[2].op_type = Some("FrobnicateV9".into()))),
        ("cycle", edit(|m| {
            g(m).node[0].input[0] = "y".into();
        })),
        ("self-loop", edit(|m| g(m).node[2].input[0] = "y".into())),
        ("missing-initializer", edit(|m| { g(m).initializer.remove(1); })),
        ("undefined-input", edit(|m| g(m).node[1].input[1] = "nope".into())),
        ("duplicate-output", edit(|m| g(m).node[1].output[0] = "xw".into())),
        ("duplicate-initializer", edit(|m| { let w = g(m).initializer[0].clone(); g(m).initializer.push(w); })),
        ("output-never-computed", edit(|m| g(m).output[0].name = Some("ghost".into()))),
        ("huge-dims", edit(|m| g(m).initializer[0].dims = vec![1 << 40, 1 << 40])),
        ("negative-dim", edit(|m| g(m).initializer[0].dims = vec![-4, 3])),
        ("huge-input-dim", edit(|m| g(m).input[0] = value("x", &[Ok(1 << 50), Ok(4)]))),
        ("raw-data-short", edit(|m| g(m).initializer[0].raw_data = Some(vec![0u8; 20].into()))),
        ("typed-data-short", edit(|m| g(m).initializer[1].float_data.truncate(2))),
        ("unknown-data-type", edit(|m| g(m).initializer[0].data_type = Some(99))),
        ("string-data-type", edit(|m| g(m).initializer[0].data_type = Some(DataType::String as i32))),
        ("wrong-shapes", edit(|m| g(m).initializer[0].dims = vec![3, 4])),
        ("input-rank-unknown", edit(|m| g(m).input[0].r#type.as_mut().map(|t| if let Some(type_proto::Value::TensorType(tt)) = &mut t.value { tt.shape = None }).unwrap_or_default())),
        ("transpose-bad-perm", edit(|m| {
            g(m).node[2] = NodeProto { attribute: vec![AttributeProto { name: Some("perm".into()), ints: vec![0, 5], r#type: Some(7), ..Default::default() }], ..node("Transpose", &["z"], "y") };
        })),
        ("external-outside-folder", edit(|m| ext_w(m, "../../../etc/passwd", "", ""))),
        ("external-absolute", edit(|m| ext_w(m, "/etc/passwd", "", ""))),
        ("external-missing-file", edit(|m| ext_w(m, "weights.bin", "", ""))),
        ("external-no-location", edit(|m| ext_w(m, "", "0", "48"))),
        ("external-offset-past-end", edit(|m| ext_w(m, "case.onnx", "1000000000", "48"))),
        ("external-offset-overflow", edit(|m| ext_w(m, "case.onnx", "18446744073709551615", "48"))),
        ("external-length-mismatch", edit(|m| ext_w(m, "case.onnx", "0", "47"))),
        ("external-offset-not-a-number", edit(|m| ext_w(m, "case.onnx", "ten", "48"))),
    ]
}
